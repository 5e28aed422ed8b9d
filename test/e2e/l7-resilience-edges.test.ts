// Resilience at its edges in the lab, across nodes over HBONE mTLS, with real clients: what the retry layer must
// not replay (a body over 64 KiB, a request or gRPC call still streaming when the upstream failed) next to what
// it replays byte for byte, plain HTTP/2 balanced per request over one client connection, and the
// DestinationRule idle timeout closing idle upstream connections (HTTP/1.1 and HTTP/2).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { admin, down, execInPod, isRoot, metricSum, podIP, podYaml, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';
import { grpcMessage } from '../helpers/streaming-post';
import type { LabState } from '../../src/lab';

const EARLY_FAIL = path.resolve(__dirname, '../helpers/early-fail-http.js');
const EARLY_FAIL_GRPC = path.resolve(__dirname, '../helpers/early-fail-grpc.js');
const STREAMING_POST = path.resolve(__dirname, '../helpers/streaming-post.js');
const VIP = { solo: '198.18.128.70', early: '198.18.128.71', web: '198.18.128.72', webH2: '198.18.128.73', idle: '198.18.128.74', keep: '198.18.128.75', idleH2: '198.18.128.76', keepH2: '198.18.128.77', grpc: '198.18.128.78' };
const H2C = 'kubernetes.io/h2c';

const pod = (name: string, node: string, app: string, command: string[]): string => podYaml({ name, node, serviceAccount: app, app, command });
const sample = (name: string): string[] => ['nodemesh', 'sample', 'http', '--port', '8080', '--name', name];
const svc = (name: string, vip: string, app: string, protocol = 'http'): string => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { clusterIP: ${vip}, selector: { app: ${app} }, ports: [{ name: http, port: 80, targetPort: 8080, appProtocol: ${protocol} }] }
---`;
const idleRule = (host: string, idle: string): string => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host}, namespace: default }
spec: { host: ${host}, trafficPolicy: { connectionPool: { http: { idleTimeout: ${idle} } } } }
---`;

const MANIFEST = [
  pod('client', 'node-a', 'client', ['sleep', 'infinity']),
  pod('solo-1', 'node-b', 'solo', sample('solo')),
  pod('early-1', 'node-b', 'early', [process.execPath, EARLY_FAIL, '8080']),
  pod('early-grpc-1', 'node-b', 'early-grpc', [process.execPath, EARLY_FAIL_GRPC, '8080']),
  pod('web-1', 'node-b', 'web', sample('web')),
  pod('web-2', 'node-b', 'web', sample('web')),
  // Each serves one HTTP/1.1 and one h2c Service: the upstream connections to a pod are its HBONE tunnels.
  pod('idle-1', 'node-b', 'idle', sample('idle')),
  pod('keep-1', 'node-b', 'keep', sample('keep')),
  svc('solo', VIP.solo, 'solo'),
  svc('early', VIP.early, 'early'),
  svc('early-grpc', VIP.grpc, 'early-grpc', 'grpc'),
  svc('web', VIP.web, 'web'),
  svc('web-h2', VIP.webH2, 'web', H2C),
  svc('idle', VIP.idle, 'idle'),
  svc('keep', VIP.keep, 'keep'),
  svc('idle-h2', VIP.idleH2, 'idle', H2C),
  svc('keep-h2', VIP.keepH2, 'keep', H2C),
  `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: solo-routes, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: solo, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /retry } }]
      retry: { attempts: 2, codes: [500], backoff: 10ms }
      backendRefs: [{ name: solo, port: 80 }]
---`,
  idleRule('idle', '1s'),
  idleRule('idle-h2', '1s'),
  idleRule('keep', '30s'),
  idleRule('keep-h2', '30s'),
].join('\n');

interface Answer {
  status: number;
  body?: { pod: string; fail?: { attempt: number; failed: boolean }; requestBody?: { bytes: number; sha256: string }; headers: Record<string, string> };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('L7 resilience at the edges, across nodes', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('re');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
    await waitFor('node-a to have solo-routes and the idle timeouts', async () => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { routes: { name: string; routes: unknown[] }[]; services: { clusters: { host: string; policy?: { connectionPool?: { idleTimeoutMs?: number } } }[] } };
      const solo = dump.routes.find((t) => t.name.startsWith('routes|solo.default'));
      const idle = dump.services.clusters.filter((c) => c.policy?.connectionPool?.idleTimeoutMs !== undefined);
      return solo?.routes.length === 1 && idle.length === 4;
    }, 10_000);
  });
  after(async () => {
    await down(lab);
  });

  /** One request with the sample client; its answer line. */
  async function once(url: string, args: string[]): Promise<Answer> {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, ...args], 20_000);
    assert.equal(r.code === 0 || r.code === 1, true, r.stdout + r.stderr);
    return JSON.parse(r.stdout.trim().split('\n')[0]!) as Answer;
  }

  const retries = async (): Promise<number> => metricSum(await admin(lab, 'node-a', '/metrics'), 'nodemesh_retries_total');

  it('retry and body size: a POST up to 64 KiB is replayed intact to the second attempt; one byte more is sent once and its failure passed on', async () => {
    const key = (k: string): string[] => ['-H', `x-fail-key: ${lab}-${k}`];
    const r0 = await retries();
    // Random bytes, so a replay that lost, reordered or repeated a chunk would hash differently.
    const small = randomBytes(3000).toString('base64');
    const a = await once(`http://${VIP.solo}/retry?fail=1`, ['-X', 'POST', '-d', small, ...key('small')]);
    assert.equal(a.status, 200, JSON.stringify(a));
    assert.deepEqual(a.body?.fail, { key: `${lab}-small`, attempt: 2, failed: false }, 'the second attempt answered');
    assert.deepEqual(a.body?.requestBody, { bytes: small.length, sha256: sha256(Buffer.from(small)) }, 'the second attempt got the same bytes');
    assert.equal(a.body?.headers['x-envoy-attempt-count'], '2');
    // At the limit: 64 KiB (streamed by the client in 64 KiB writes, with a content-length) is still kept.
    const limit = 64 * 1024;
    const b = await once(`http://${VIP.solo}/retry?fail=1`, ['-X', 'POST', '--data-bytes', String(limit), ...key('limit')]);
    assert.equal(b.status, 200, JSON.stringify(b));
    assert.deepEqual([b.body?.fail?.attempt, b.body?.requestBody], [2, { bytes: limit, sha256: sha256(Buffer.alloc(limit, 'x')) }]);
    // One byte over: not kept, so not retried. The client gets the first attempt's 500, and the backend's
    // next request with that key is only its second.
    const c = await once(`http://${VIP.solo}/retry?fail=1`, ['-X', 'POST', '--data-bytes', String(limit + 1), ...key('over')]);
    assert.equal(c.status, 500, JSON.stringify(c));
    assert.deepEqual([c.body?.fail?.attempt, c.body?.requestBody?.bytes], [1, limit + 1], 'the failed attempt is the one the client sees');
    const d = await once(`http://${VIP.solo}/retry?fail=1`, ['-X', 'POST', '-d', 'again', ...key('over')]);
    assert.equal(d.body?.fail?.attempt, 2, 'the large request reached the backend once');
    assert.equal((await retries()) - r0, 2, 'two retries: the small and the 64 KiB POST');
  });

  it('streaming request: a chunked body still being sent when the upstream fails is not retried; the same request complete is', async () => {
    const hits = async (key: string): Promise<number> => ((await once(`http://${VIP.early}/hits?key=${key}`, [])).body as unknown as { hits: number }).hits;
    const r0 = await retries();
    // The backend answers 503 at the request's head (Istio's default retries include 503), while the client
    // keeps sending chunks until that answer arrives.
    const k1 = `${lab}-stream`;
    // Then, on the same keep-alive client, a GET asking the backend how many requests carried that key.
    const r = await execInPod(lab, 'client', [process.execPath, STREAMING_POST, `http://${VIP.early}/upload?fail=1`, k1, `http://${VIP.early}/hits?key=${k1}`], 20_000);
    type Streamed = { status: number; body: { attempt: number }; chunksBeforeAnswer: number; next: { status: number; body: { hits: number }; sameConnection: boolean } };
    const streamed = JSON.parse(r.stdout.trim().split('\n')[0]!) as Streamed;
    console.log(`streaming: ${JSON.stringify(streamed)}`);
    assert.equal(streamed.status, 503, JSON.stringify(streamed));
    assert.equal(streamed.body.attempt, 1, 'the client got the failed attempt');
    assert.ok(streamed.chunksBeforeAnswer >= 1, 'the body was still streaming');
    // The rest of the upload is not taken for a request: the next one on that client is served as itself.
    assert.deepEqual([streamed.next.status, streamed.next.body.hits], [200, 1], 'sent once');
    assert.equal(await hits(k1), 1);
    // The same failure on a complete body is retried, the body replayed: a second attempt answers 200.
    const k2 = `${lab}-whole`;
    const body = randomBytes(2000).toString('hex');
    const whole = await once(`http://${VIP.early}/upload?fail=1`, ['-X', 'POST', '-d', body, '-H', `x-fail-key: ${k2}`]);
    assert.equal(whole.status, 200, JSON.stringify(whole));
    assert.deepEqual(whole.body?.requestBody, { bytes: body.length, sha256: sha256(Buffer.from(body)) });
    assert.equal(await hits(k2), 2);
    assert.equal((await retries()) - r0, 1, 'only the complete body was retried');
  });

  it('gRPC client streaming: a call still sending when the upstream answers UNAVAILABLE is not retried; the same call complete is', async () => {
    const hits = async (key: string): Promise<number> => ((await once(`http://${VIP.grpc}/hits/${key}`, ['--http2'])).body as unknown as { hits: number }).hits;
    type Call = { status: number; grpcStatus: number; head: Record<string, string>; messagesBeforeAnswer: number };
    const call = async (key: string, mode: string): Promise<Call> => {
      const r = await execInPod(lab, 'client', [process.execPath, STREAMING_POST, `http://${VIP.grpc}/nodemesh.test.Upload/Send`, key, mode], 20_000);
      return JSON.parse(r.stdout.trim().split('\n')[0]!) as Call;
    };
    const r0 = await retries();
    const k1 = `${lab}-grpc-stream`;
    const streamed = await call(k1, 'grpc');
    console.log(`gRPC streaming: ${JSON.stringify(streamed)}`);
    assert.deepEqual([streamed.status, streamed.grpcStatus, streamed.head['x-attempt']], [200, 14, '1'], JSON.stringify(streamed));
    assert.ok(streamed.messagesBeforeAnswer >= 1, 'the call was still sending');
    assert.equal(await hits(k1), 1, 'sent once');
    // Istio's default retries include UNAVAILABLE: the complete call is replayed, its messages intact.
    const k2 = `${lab}-grpc-whole`;
    const whole = await call(k2, 'grpc-whole');
    assert.deepEqual([whole.grpcStatus, whole.head['x-attempt']], [0, '2'], JSON.stringify(whole));
    const sent = Buffer.concat([0, 1, 2].map(grpcMessage));
    assert.deepEqual([whole.head['x-request-bytes'], whole.head['x-request-sha256']], [String(sent.length), sha256(sent)]);
    assert.equal(await hits(k2), 2);
    assert.equal((await retries()) - r0, 1, 'only the complete call was retried');
  });

  it('HTTP/2 (h2c, not gRPC): 40 requests on one client connection are balanced per request, to HTTP/1.1 and to h2c upstreams', async () => {
    for (const vip of [VIP.web, VIP.webH2]) {
      const urls = [`http://${vip}/a`, `http://${vip}/b`];
      const r = await execInPod(lab, 'client', ['nghttp', '-nv', '-m', '20', ...urls], 20_000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stdout.split('\n').filter((l) => /\] Connected$/.test(l)).length, 1, 'one connection');
      const status = [...r.stdout.matchAll(/recv \(stream_id=\d+\) :status: (\d+)/g)].map((m) => m[1]);
      assert.deepEqual([status.length, [...new Set(status)]], [40, ['200']]);
      const servedBy: Record<string, number> = {};
      for (const m of r.stdout.matchAll(/recv \(stream_id=\d+\) x-served-by: (\S+)/g)) servedBy[m[1]!] = (servedBy[m[1]!] ?? 0) + 1;
      console.log(`HTTP/2 to ${vip}: ${JSON.stringify(servedBy)}`);
      assert.ok((servedBy['web-1'] ?? 0) >= 5 && (servedBy['web-2'] ?? 0) >= 5, `both endpoints served requests of the one connection: ${JSON.stringify(servedBy)}`);
    }
    // The agent saw one client connection per VIP.
    type Conn = { direction: string; dst: string | { ip: string } };
    const conns = JSON.parse(await admin(lab, 'node-a', '/connections')) as { active: Conn[]; recent: Conn[] };
    for (const vip of [VIP.web, VIP.webH2]) {
      const toVip = [...conns.active, ...conns.recent].filter((c) => (typeof c.dst === 'string' ? c.dst.split(':')[0] : c.dst.ip) === vip);
      assert.equal(toVip.length, 1, `one client connection to ${vip}: ${JSON.stringify(toVip)}`);
    }
  });

  it('DestinationRule idleTimeout: idle upstream connections (HTTP/1.1 and HTTP/2) close after 1 s, while those of a 30 s rule stay open', async () => {
    type Pool = { perSession: { address: string; streams: number }[] } | null;
    type Dump = { mesh: { hboneClient: Pool } | null; workers: { hboneClient?: Pool }[] };
    // node-a's upstream connections to a pod are HBONE tunnels (one CONNECT stream each) to its port 15008.
    const tunnels = async (): Promise<Record<string, number>> => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as Dump;
      const out: Record<string, number> = {};
      for (const p of [dump.mesh?.hboneClient, ...dump.workers.map((w) => w.hboneClient)]) {
        for (const s of p?.perSession ?? []) {
          const ip = s.address.slice(0, s.address.lastIndexOf(':'));
          out[ip] = (out[ip] ?? 0) + s.streams;
        }
      }
      return out;
    };
    const idle = podIP(state, 'idle-1');
    const keep = podIP(state, 'keep-1');
    // One HTTP/1.1 and one h2c request to each pod: two tunnels each, idle once answered.
    for (const vip of [VIP.idle, VIP.keep]) assert.equal((await once(`http://${vip}/`, [])).status, 200);
    for (const vip of [VIP.idleH2, VIP.keepH2]) assert.equal((await once(`http://${vip}/`, ['--http2'])).status, 200);
    const open = await tunnels();
    console.log(`idle timeout: tunnels after the requests ${JSON.stringify(open)}`);
    assert.equal(open[keep], 2, `two upstream connections to keep-1: ${JSON.stringify(open)}`);
    let last: Record<string, number> = open;
    const closed = await waitFor(`the idle-1 connections to close (idle-1 ${idle}, keep-1 ${keep})`, async () => {
      last = await tunnels();
      return (last[idle] ?? 0) === 0 ? last : null;
    }, 20_000).catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(last)}`));
    // Without asserting how long it took: the 30 s connections outlive the 1 s ones.
    assert.equal(closed[keep], 2, `keep-1's connections are still open: ${JSON.stringify(closed)}`);
    // The next request opens a new connection, and is served.
    assert.equal((await once(`http://${VIP.idle}/`, [])).status, 200);
  });
});
