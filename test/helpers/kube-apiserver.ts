// A real kube-apiserver (1.20, built by scripts/kube-apiserver.sh) over a private etcd, both on loopback with
// random ports and temp dirs, for the k8s test tier. Everything it starts is stopped by pid and its dirs removed
// by `stop()`, which tests call from `after()` so a failing test leaves nothing behind.
//
// What the server is set up for:
// - the test user "admin" (group system:masters) authenticates with a static bearer token (--token-auth-file);
// - RBAC authorization, so the manifests' Roles and Bindings are real;
// - ServiceAccount tokens: a signing key, --service-account-issuer and --api-audiences, so TokenRequest mints
//   projected, pod-bound tokens and TokenReview checks them (spec.audiences honoured);
// - service ClusterIPs from the lab's VIP range (nothing is routed there; it is only an allocation);
// - the ServiceAccount admission plugin is off: without kube-controller-manager nothing creates the token
//   Secrets that 1.20's plugin insists on, and the tier mints its tokens with TokenRequest instead.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { apiServerBinary, apiServerUnavailable, ETCD_BINARY, planApiServer } from '../../src/lab/kube/api-server';

export { apiServerBinary, DEFAULT_APISERVER, KUBE_VERSION, SA_ISSUER, SERVICE_CIDR } from '../../src/lab/kube/api-server';

/** Why the tier cannot run here, or null when the binaries are present. */
export function kubeUnavailable(): string | null {
  const why = apiServerUnavailable();
  if (why) return why;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'the k8s tier needs root';
  return null;
}

export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export interface KubeApiServer {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly adminToken: string;
  /** A kubeconfig for the admin user (client-node, nodemesh --kubeconfig). */
  readonly kubeconfig: string;
  readonly dir: string;
  /** One request as admin (or with `token`); JSON in and out. Never throws for an HTTP status. */
  request<T = unknown>(method: string, p: string, body?: unknown, opts?: { token?: string; contentType?: string; timeoutMs?: number }): Promise<KubeResponse<T>>;
  /** Like request, but throws unless the status is 2xx. */
  must<T = unknown>(method: string, p: string, body?: unknown, opts?: { token?: string; contentType?: string }): Promise<T>;
  /** A projected ServiceAccount token (TokenRequest) for `audience`, bound to a pod when given. */
  mintToken(namespace: string, serviceAccount: string, audience: string, pod?: { name: string; uid: string }): Promise<string>;
  /** Stops the API server only (etcd keeps the data), for outage tests; `resume()` starts it again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a server that dies with the test process even when that is killed (setpriv --pdeathsig), its output
 * appended to `log`.
 */
function spawnOwned(bin: string, args: string[], log: string): ChildProcess {
  const fd = fs.openSync(log, 'a');
  try {
    const c = spawn('setpriv', ['--pdeathsig', 'TERM', '--', bin, ...args], { stdio: ['ignore', fd, fd] });
    c.on('error', () => undefined);
    return c;
  } finally {
    fs.closeSync(fd);
  }
}

function stopChild(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function logTail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startKubeApiServer(opts: { readyTimeoutMs?: number } = {}): Promise<KubeApiServer> {
  const why = kubeUnavailable();
  if (why) throw new Error(why);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-kube-'));
  const children: ChildProcess[] = [];
  let apiserver: ChildProcess | undefined;
  const stopAll = async (): Promise<void> => {
    await stopChild(apiserver);
    for (const c of children.splice(0).reverse()) await stopChild(c);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The same command lines as a Kubernetes-mode lab's own API server (src/lab/kube/api-server.ts).
    const plan = await planApiServer(dir);
    const { url, adminToken, apiArgs, etcdLog, apiLog } = plan;
    const etcd = spawnOwned(ETCD_BINARY, plan.etcdArgs, etcdLog);
    children.push(etcd);
    const launch = (): ChildProcess => spawnOwned(apiServerBinary(), apiArgs, apiLog);
    apiserver = launch();

    const kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
        'current-context': 'test',
      }),
      { mode: 0o600 },
    );

    const agent = new https.Agent({ rejectUnauthorized: false, keepAlive: false });
    const request = <T>(method: string, p: string, body?: unknown, o: { token?: string; contentType?: string; timeoutMs?: number } = {}): Promise<KubeResponse<T>> =>
      new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const req = https.request(
          `${url}${p}`,
          {
            method,
            agent,
            timeout: o.timeoutMs ?? 10_000,
            headers: {
              authorization: `Bearer ${o.token ?? adminToken}`,
              accept: 'application/json',
              ...(data === undefined ? {} : { 'content-type': o.contentType ?? 'application/json', 'content-length': Buffer.byteLength(data) }),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON (readyz): keep the text
              }
              resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out`)));
        req.on('error', reject);
        req.end(data);
      });

    const waitReady = async (): Promise<void> => {
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
      for (;;) {
        if (apiserver!.exitCode !== null) throw new Error(`kube-apiserver exited (${apiserver!.exitCode}); log:\n${logTail(apiLog)}\netcd log:\n${logTail(etcdLog, 10)}`);
        if (etcd.exitCode !== null) throw new Error(`etcd exited (${etcd.exitCode}); log:\n${logTail(etcdLog)}`);
        const r = await request('GET', '/readyz', undefined, { timeoutMs: 2000 }).catch(() => null);
        if (r?.status === 200) return;
        if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after ${opts.readyTimeoutMs ?? 90_000} ms; log:\n${logTail(apiLog)}`);
        await new Promise((r2) => setTimeout(r2, 250));
      }
    };
    await waitReady();

    const must = async <T>(method: string, p: string, body?: unknown, o: { token?: string; contentType?: string } = {}): Promise<T> => {
      const r = await request<T>(method, p, body, o);
      if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p}: ${r.status} ${r.text.slice(0, 500)}`);
      return r.body;
    };

    return {
      url,
      adminToken,
      kubeconfig,
      dir,
      request,
      must,
      async mintToken(namespace, serviceAccount, audience, pod) {
        const body = {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: [audience],
            expirationSeconds: 3600,
            boundObjectRef: pod ? { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid } : undefined,
          },
        };
        const r = await must<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, body);
        return r.status.token;
      },
      async pause() {
        await stopChild(apiserver);
      },
      async resume() {
        apiserver = launch();
        await waitReady();
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** `kube-apiserver --version`, for messages. */
export function apiServerVersion(): string {
  const r = spawnSync(apiServerBinary(), ['--version'], { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}
