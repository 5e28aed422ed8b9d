// Two in-process agents' data paths (ProxyRuntime) on loopback, a client pod on "node A" and server pods
// on "node B", joined by real HBONE (mTLS from a test CA): the L7 path without root or a kernel.
//
// Pod IPs are distinct 127.x addresses so each server pod has its own 15008. Original destinations are
// scripted per client connection (the kernel's job in the lab).

import http from 'node:http';
import type http2 from 'node:http2';
import { Registry } from 'prom-client';
import type { CertBundle, IdentitySource } from '../../src/identity/types';
import { ProxyRuntime, type ProxyRuntimeOptions } from '../../src/proxy/runtime';
import type { Endpoint } from '../../src/proxy/connection-tracker';
import type { PodSockets } from '../../src/proxy/context';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import type { RouteTable, ServicePort } from '../../src/state/routes';
import type { Workload } from '../../src/state/workloads';
import { createLogger } from '../../src/telemetry/logger';
import { createTestCa } from './test-ca';

interface RawTcp {
  bind(host: string, port: number): number;
  fd: number;
}
const { TCP, constants } = (process as unknown as { binding(name: string): { TCP: new (t: number) => RawTcp; constants: { SERVER: number } } }).binding('tcp_wrap');
const keep: RawTcp[] = [];
function boundFd(host: string, port: number): number {
  const h = new TCP(constants.SERVER);
  const err = h.bind(host, port);
  if (err !== 0) throw new Error(`bind ${host}:${port} failed: ${err}`);
  keep.push(h);
  return h.fd;
}

const TD = 'cluster.local';

function identities(ca: ReturnType<typeof createTestCa>, ids: string[]): IdentitySource {
  const bundles = new Map<string, CertBundle>(ids.map((id) => [id, ca.issue({ spiffeId: id })]));
  return {
    certFor: async (id) => {
      const b = bundles.get(id);
      if (!b) throw new Error(`no certificate for ${id}`);
      return b;
    },
    current: (id) => bundles.get(id) ?? null,
    trustBundle: () => [ca.rootPem],
  };
}

export interface PairPod extends Workload {
  ip: string;
}

export function pod(name: string, ip: string, serviceAccount: string, labels: Record<string, string> = {}): PairPod {
  return { uid: `uid-${name}`, name, namespace: 'default', serviceAccount, ips: [ip], ip, labels, annotations: {}, workloadName: name };
}

export interface L7Pair {
  a: ProxyRuntime;
  b: ProxyRuntime;
  registryA: Registry;
  registryB: Registry;
  /** Where the client pod's redirected connections arrive (node A's 15001 for the client pod). */
  clientPort: number;
  /** The original destination the next client connections get. */
  setDestination(dst: Endpoint): void;
  /** Same service config on both nodes (as xDS would give them). */
  configure(c: { clusters: ClusterInfo[]; endpoints: Map<string, EndpointInfo[]>; vips: ServicePort[]; routes?: RouteTable[] }): void;
  close(): Promise<void>;
}

/**
 * Starts node A with `client` and node B with `servers` (each pod listens on 15008 at its IP; its
 * application is the caller's business, at the pod IP).
 */
export async function startPair(
  client: PairPod,
  servers: PairPod[],
  opts: {
    accessLog?: 'all' | 'errors' | 'off';
    logLines?: string[];
    /** More runtime options per node (tracer, tap, locality). */
    extra?: (node: 'a' | 'b', registry: Registry) => Partial<ProxyRuntimeOptions>;
  } = {},
): Promise<L7Pair> {
  const ca = createTestCa();
  const ids = [client, ...servers].map((p) => `spiffe://${TD}/ns/${p.namespace}/sa/${p.serviceAccount}`);
  // `logLines` collects what both agents log (JSON lines), for tests of the access log.
  const lines = opts.logLines;
  const log = lines
    ? createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(l) } })
    : createLogger({ level: process.env.NODEMESH_TEST_LOG ?? 'silent' });
  const registryA = new Registry();
  const registryB = new Registry();
  const mk = (node: 'a' | 'b', registry: Registry): ProxyRuntime =>
    new ProxyRuntime({ log, registry, mesh: { identity: identities(ca, ids), trustDomain: TD, keepalive: null }, accessLog: opts.accessLog ?? 'off', ...opts.extra?.(node, registry) });
  const a = mk('a', registryA);
  const b = mk('b', registryB);
  let dst: Endpoint | null = null;
  const plainSockets: PodSockets = { newSocket: async () => null, originalDst: () => dst };
  const outFd = boundFd('127.0.0.1', 0);
  await a.startPod(client, plainSockets, { outbound: [outFd], inbound: [], hbone: [] });
  // The port the kernel gave the bound fd: read it back from the server the runtime made.
  const clientPort = await listeningPort(outFd);
  for (const s of servers) await b.startPod(s, plainSockets, { outbound: [], inbound: [], hbone: [boundFd(s.ip, 15008)] });
  // Node A knows the server pods from the control plane's workload directory (in the mesh, with identities).
  return {
    a,
    b,
    registryA,
    registryB,
    clientPort,
    setDestination: (d) => {
      dst = d;
    },
    configure(c) {
      for (const rt of [a, b]) {
        rt.services.replaceClusters(c.clusters);
        rt.services.replaceEndpoints(c.endpoints);
        rt.services.replaceVips(c.vips);
        rt.routes.replace(c.routes ?? []);
      }
    },
    async close() {
      for (const rt of [a, b]) {
        rt.stopAll();
        rt.destroy();
      }
    },
  };
}

/**
 * One HTTP Service: `host` at `vip` (port 80), every path routed to cluster "web" (round robin over `servers`'
 * port 8080), configured on both nodes; the client's connections go to the VIP.
 */
export function serveOneService(pair: L7Pair, vip: string, host: string, servers: PairPod[]): void {
  const table: RouteTable = {
    name: `vip|${vip}:80`,
    routes: [
      {
        name: 'default/web/all',
        source: { kind: 'HTTPRoute', namespace: 'default', name: 'web', rule: 'all' },
        matches: [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }],
        action: { kind: 'forward', backends: [{ cluster: 'web', weight: 1 }] },
      },
    ],
  };
  pair.configure({
    clusters: [{ name: 'web', host, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'http' }],
    endpoints: new Map([['web', servers.map((s) => ({ ip: s.ip, port: 8080, pod: s.name, namespace: s.namespace, serviceAccount: s.serviceAccount, inMesh: true }))]]),
    vips: [{ vip, port: 80, cluster: 'web', protocol: 'http', routeTable: table.name }],
    routes: [table],
  });
  pair.setDestination({ ip: vip, port: 80 });
}

/** One GET on an HTTP/2 session (the body read and dropped); resolves with its status. */
export function h2Status(session: http2.ClientHttp2Session, path: string, authority: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = session.request({ ':path': path, ':authority': authority });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
    req.end();
  });
}

/** The local port of a listening fd (via /proc/self/fd → socket inode → /proc/net/tcp). */
async function listeningPort(fd: number): Promise<number> {
  const fs = await import('node:fs');
  const inode = /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  for (let i = 0; i < 50; i++) {
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode && f[3] === '0A') return parseInt(f[1]!.split(':')[1]!, 16);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`fd ${fd} is not listening`);
}

/** An application server at `ip:port` answering JSON with who served, what it saw. */
export function appServer(ip: string, port: number, name: string, handler?: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(
    handler ??
      ((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = JSON.stringify({ pod: name, method: req.method, path: req.url, headers: req.headers, bytes: Buffer.concat(chunks).length });
          res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name }).end(body);
        });
      }),
  );
  return new Promise((resolve) => server.listen(port, ip, () => resolve(server)));
}
