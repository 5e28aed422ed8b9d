// Where a Kubernetes-mode lab gets its API server, and how its processes reach it.
// - Default: the lab starts its own (etcd + kube-apiserver 1.20 from the machine's cache) on the host's loopback,
//   in the lab's cgroup, its data under the lab dir; `lab down` stops it and the data goes with the lab dir.
// - `--kubeconfig FILE`: an existing API server; the lab uses that file's credentials for its own requests and
//   deletes what it created at `lab down`.
// Either way the lab's namespaces reach the API at https://198.18.0.254:6443 through the API proxy, with the
// ServiceAccount tokens a kubelet would mount, never with the admin's credentials.

import fs from 'node:fs';
import path from 'node:path';
import { mkCgroup } from '../cgroups';
import type { LabLogger } from '../log';
import { logTail as fileTail, type Started } from '../processes';
import { sleep } from '../run';
import { writeState, type LabState } from '../state';
import { KubeApi } from './api-client';
import { apiServerBinary, apiServerUnavailable, ETCD_BINARY, planApiServer, servingCaPem, writeKubeconfig, type KubeconfigSpec } from './api-server';
import { LabKubeError } from './errors';
import { hostEnv, startOnHost } from './host-process';
import { adminKubeconfigPath, apiServerDir, labCaFile, LAB_API_ADDRESS, LAB_API_PORT, type KubeLabState } from './kube-state';

export function kubeCgroup(state: LabState): string {
  return path.join(state.labCgroup, 'kube');
}

function kube(state: LabState): KubeLabState {
  if (!state.kubernetes) throw new Error('not a Kubernetes-mode lab');
  return state.kubernetes;
}

/** Starts etcd and kube-apiserver for the lab and waits until /readyz answers; returns an admin client. */
export async function startOwnApiServer(state: LabState, log: LabLogger, signal?: AbortSignal, timeoutMs = 90_000): Promise<KubeApi> {
  const why = apiServerUnavailable();
  if (why) throw new LabKubeError('NM_LAB_KUBE_NO_APISERVER', why, { hint: 'or give an existing API server with --kubeconfig' });
  const k = kube(state);
  const plan = await planApiServer(apiServerDir(state.lab), { advertiseAddress: LAB_API_ADDRESS, logDir: state.logDir });
  const cg = kubeCgroup(state);
  mkCgroup(cg);
  log.info(`starting the lab's API server (kube-apiserver ${apiServerBinary()}, etcd on 127.0.0.1:${plan.etcdClientPort})`);
  const etcd = await startOnHost(cg, [ETCD_BINARY, ...plan.etcdArgs], hostEnv(), plan.etcdLog);
  const apiserver = await startOnHost(cg, [apiServerBinary(), ...plan.apiArgs], hostEnv(), plan.apiLog);
  k.own = { etcd: etcd.ref, apiserver: apiserver.ref, dir: plan.dir };
  k.server = plan.url;
  k.adminKubeconfig = adminKubeconfigPath(state.lab);
  writeState(state);
  const deadline = Date.now() + timeoutMs;
  let last = 'not started yet';
  for (;;) {
    if (signal?.aborted) throw new LabKubeError('NM_LAB_KUBE_APISERVER', 'interrupted while waiting for the API server');
    for (const [name, p, file] of [['etcd', etcd, plan.etcdLog], ['kube-apiserver', apiserver, plan.apiLog]] as [string, Started, string][]) {
      if (p.exit) throw new LabKubeError('NM_LAB_KUBE_APISERVER', `${name} exited (${p.exit.signal ?? `code ${p.exit.code}`}) at start; last log lines:\n${fileTail(file)}`, { hint: `log: ${file}` });
    }
    const ca = servingCaPem(plan);
    if (ca) {
      fs.writeFileSync(labCaFile(state.lab), ca);
      k.caFile = labCaFile(state.lab);
      writeKubeconfig(k.adminKubeconfig, { server: plan.url, token: plan.adminToken, caPem: ca, user: 'admin' });
      const api = await KubeApi.load(k.adminKubeconfig);
      try {
        const r = await api.request('GET', '/readyz', undefined, { timeoutMs: 2000 });
        if (r.status === 200) {
          writeState(state);
          return api;
        }
        last = `/readyz answered ${r.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    if (Date.now() > deadline) {
      throw new LabKubeError('NM_LAB_KUBE_APISERVER', `the lab's API server was not ready within ${timeoutMs} ms (${last}); last log lines:\n${fileTail(plan.apiLog)}`, { hint: `log: ${plan.apiLog}` });
    }
    await sleep(250);
  }
}

/**
 * Uses the API server of `kubeconfig`. The lab's processes dial it through the proxy at 198.18.0.254, so they
 * verify its certificate by the name every API server's certificate carries (the `kubernetes` Service's) when the
 * kubeconfig names it by IP, else by the kubeconfig's host name.
 */
export async function useGivenApiServer(state: LabState, kubeconfig: string): Promise<KubeApi> {
  const k = kube(state);
  const file = path.resolve(kubeconfig);
  const api = await KubeApi.load(file);
  const r = await api.request('GET', '/version', undefined, { timeoutMs: 5000 }).catch((err: unknown) => {
    throw new LabKubeError('NM_LAB_KUBE_KUBECONFIG', `the API server of ${file} (${api.server}) does not answer: ${(err as Error).message}`, { hint: 'check that it runs and that this host reaches it' });
  });
  if (r.status !== 200) throw new LabKubeError('NM_LAB_KUBE_KUBECONFIG', `the API server of ${file} answered GET /version with ${r.status}`, { hint: 'check the kubeconfig\'s credentials' });
  k.server = api.server;
  k.adminKubeconfig = file;
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  const cluster = kc.getCurrentCluster();
  const ca = cluster?.caData ? Buffer.from(cluster.caData, 'base64').toString('utf8') : cluster?.caFile ? fs.readFileSync(cluster.caFile, 'utf8') : undefined;
  if (ca && !cluster?.skipTLSVerify) {
    fs.mkdirSync(path.dirname(labCaFile(state.lab)), { recursive: true });
    fs.writeFileSync(labCaFile(state.lab), ca);
    k.caFile = labCaFile(state.lab);
  }
  const host = new URL(api.server).hostname.replace(/^\[|\]$/g, '');
  k.tlsServerName = cluster?.tlsServerName ?? (/^[\d.]+$|:/.test(host) ? 'kubernetes.default.svc' : host);
  writeState(state);
  return api;
}

/** Starts the API proxy (host namespace, listening in the fabric) and waits until it accepts. */
export async function startApiProxy(state: LabState, timeoutMs = 15_000): Promise<void> {
  const k = kube(state);
  const target = new URL(k.server);
  const port = target.port || '443';
  const log = path.join(state.logDir, 'api-proxy.log');
  const script = path.join(__dirname, 'api-proxy.js');
  const cg = kubeCgroup(state);
  mkCgroup(cg);
  const argv = [process.execPath, script, '--netns', `/run/netns/${state.fabricNetns}`, '--listen', `${LAB_API_ADDRESS}:${LAB_API_PORT}`, '--target', `${target.hostname}:${port}`];
  const p = await startOnHost(cg, argv, hostEnv(), log);
  k.proxy = p.ref;
  k.labServer = `https://${LAB_API_ADDRESS}:${LAB_API_PORT}`;
  writeState(state);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.exit) throw new LabKubeError('NM_LAB_KUBE_PROXY', `the lab's API proxy exited at start; last log lines:\n${fileTail(log)}`, { hint: `log: ${log}` });
    if (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('"listening"')) return;
    if (Date.now() > deadline) throw new LabKubeError('NM_LAB_KUBE_PROXY', `the lab's API proxy did not listen within ${timeoutMs} ms`, { hint: `log: ${log}` });
    await sleep(50);
  }
}

/** A kubeconfig for a lab process (in a lab namespace) with `token`. */
export function labKubeconfig(state: LabState, token: string): KubeconfigSpec {
  const k = kube(state);
  return {
    server: k.labServer,
    token,
    caPem: k.caFile ? fs.readFileSync(k.caFile, 'utf8') : undefined,
    tlsServerName: k.tlsServerName,
  };
}
