// A real kube-apiserver (1.20, built once per machine by scripts/kube-apiserver.sh) over a private etcd, both on
// 127.0.0.1 with free ports and their data in one directory: what to run and how to tell it is ready. Who runs the
// two processes is the caller's business (the lab: detached, in the lab's cgroup; the k8s test tier: owned by the
// test process).
//
// What the server is set up for:
// - an "admin" user (group system:masters) with a static bearer token (--token-auth-file);
// - RBAC authorization, so nodemesh's Roles and Bindings are real;
// - ServiceAccount tokens: a signing key, --service-account-issuer and --api-audiences, so TokenRequest mints
//   projected, pod-bound tokens and TokenReview checks them (spec.audiences honoured);
// - service ClusterIPs from the lab's VIP range (only an allocation: connect-time redirection serves them);
// - the ServiceAccount admission plugin off: without kube-controller-manager nothing creates the token Secrets that
//   1.20's plugin insists on; tokens come from TokenRequest instead;
// - its serving certificate (self-signed by the server at start, under `certs/`) names 127.0.0.1 and the
//   advertised address, so clients on either can verify it with the CA in `caPem()`.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const KUBE_VERSION = '1.20.2';
export const DEFAULT_APISERVER = `/var/cache/nodemesh/kube-apiserver-${KUBE_VERSION}/kube-apiserver`;
export const ETCD_BINARY = '/usr/bin/etcd';
/** ClusterIPs: the lab's VIP range, so a Service's VIP is the same in the API and in the lab. */
export const SERVICE_CIDR = '198.18.128.0/17';
export const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export function apiServerBinary(): string {
  return process.env.NODEMESH_KUBE_APISERVER ?? DEFAULT_APISERVER;
}

/** Why an API server cannot be started here, or null when the binaries are present. */
export function apiServerUnavailable(): string | null {
  const bin = apiServerBinary();
  if (!fs.existsSync(bin)) return `kube-apiserver ${KUBE_VERSION} is not built at ${bin}: run "bash scripts/kube-apiserver.sh" (or "bash scripts/dev.sh setup")`;
  if (!fs.existsSync(ETCD_BINARY)) return 'etcd is not installed: run "bash scripts/kube-apiserver.sh" (apt package etcd-server)';
  return null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface ApiServerPlan {
  dir: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  securePort: number;
  /** https://127.0.0.1:PORT */
  url: string;
  adminToken: string;
  /** The address the serving certificate names besides 127.0.0.1 (and the `kubernetes` Service's endpoint). */
  advertiseAddress: string;
  etcdArgs: string[];
  apiArgs: string[];
  etcdLog: string;
  apiLog: string;
}

/**
 * Picks ports, writes the ServiceAccount signing key and the admin token into `dir`, and returns both command lines.
 * `logDir` defaults to `dir`.
 */
export async function planApiServer(dir: string, opts: { advertiseAddress?: string; logDir?: string } = {}): Promise<ApiServerPlan> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const [etcdClientPort, etcdPeerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const adminToken = randomBytes(24).toString('hex');
  fs.writeFileSync(path.join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const advertiseAddress = opts.advertiseAddress ?? '127.0.0.1';
  const logDir = opts.logDir ?? dir;
  const etcdArgs = [
    '--name=nodemesh',
    `--data-dir=${path.join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=nodemesh=http://127.0.0.1:${etcdPeerPort}`,
    '--listen-metrics-urls=',
  ];
  const apiArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    '--bind-address=127.0.0.1',
    `--advertise-address=${advertiseAddress}`,
    `--secure-port=${securePort}`,
    '--insecure-port=0',
    `--cert-dir=${path.join(dir, 'certs')}`,
    `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--allow-privileged=true',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    `--service-account-issuer=${SA_ISSUER}`,
    `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
    `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
    `--api-audiences=${SA_ISSUER}`,
    '--disable-admission-plugins=ServiceAccount',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=1',
  ];
  return {
    dir,
    etcdClientPort,
    etcdPeerPort,
    securePort,
    url: `https://127.0.0.1:${securePort}`,
    adminToken,
    advertiseAddress,
    etcdArgs,
    apiArgs,
    etcdLog: path.join(logDir, 'etcd.log'),
    apiLog: path.join(logDir, 'kube-apiserver.log'),
  };
}

/** The CA of the server's self-signed serving certificate (the second certificate of certs/apiserver.crt), once it exists. */
export function servingCaPem(plan: Pick<ApiServerPlan, 'dir'>): string | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(plan.dir, 'certs', 'apiserver.crt'), 'utf8');
  } catch {
    return null;
  }
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return certs.length >= 2 ? `${certs[1]}\n` : null;
}

export interface KubeconfigSpec {
  server: string;
  token: string;
  /** PEM of the CA that signed the server's certificate; absent: insecure-skip-tls-verify. */
  caPem?: string;
  /** The name to verify the server's certificate against when it is not the server's own host. */
  tlsServerName?: string;
  user?: string;
}

/** A kubeconfig document (JSON is YAML) for one server and one bearer token. */
export function kubeconfigText(k: KubeconfigSpec): string {
  const cluster: Record<string, unknown> = { server: k.server };
  if (k.caPem) cluster['certificate-authority-data'] = Buffer.from(k.caPem).toString('base64');
  else cluster['insecure-skip-tls-verify'] = true;
  if (k.tlsServerName) cluster['tls-server-name'] = k.tlsServerName;
  const user = k.user ?? 'user';
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'nodemesh', cluster }],
      users: [{ name: user, user: { token: k.token } }],
      contexts: [{ name: 'nodemesh', context: { cluster: 'nodemesh', user } }],
      'current-context': 'nodemesh',
    },
    null,
    2,
  )}\n`;
}

export function writeKubeconfig(file: string, k: KubeconfigSpec): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, kubeconfigText(k), { mode: 0o600 });
  return file;
}

export function logTail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
