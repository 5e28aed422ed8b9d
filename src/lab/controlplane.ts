// The lab's control plane: fed by the lab file (with the pods' assigned IPs), serving agents over a unix socket.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { killCgroup, mkCgroup } from './cgroups';
import { LabError } from './errors';
import { checkLabName, labDir, DEFAULT_CLI } from './paths';
import { logTail, startDetached, type Started } from './processes';
import { sleep } from './run';
import { procAlive, readState, writeState, type LabState } from './state';

export function configDir(lab: string): string {
  return path.join(labDir(lab), 'config');
}

export function xdsSocket(lab: string): string {
  return path.join(labDir(lab), 'xds.sock');
}

/** The file the lab's control plane watches: the lab file with every pod's node, IP and uid filled in. */
export function meshConfigFile(lab: string): string {
  return path.join(configDir(lab), 'lab.yaml');
}

/**
 * Writes the lab file for the control plane, adding what the lab decided (pod IPs, uids) the way a
 * kubelet reports it (status.podIP, metadata.uid), so Services resolve to the pods' real addresses.
 * Everything else (Services, policies) passes through untouched.
 */
export function writeMeshConfig(state: LabState, manifestFile: string): void {
  const docs = parseAllDocuments(fs.readFileSync(manifestFile, 'utf8'));
  const out: string[] = [];
  for (const doc of docs) {
    const obj = doc.toJS() as Record<string, unknown> | null;
    if (!obj) continue;
    if (obj.kind === 'Pod') {
      const meta = (obj.metadata ?? {}) as Record<string, unknown>;
      const ns = typeof meta.namespace === 'string' ? meta.namespace : 'default';
      const pod = state.pods.find((p) => p.name === meta.name && p.namespace === ns);
      if (pod) {
        doc.setIn(['metadata', 'namespace'], ns);
        doc.setIn(['metadata', 'uid'], pod.uid);
        doc.setIn(['spec', 'nodeName'], pod.node);
        doc.setIn(['status', 'podIP'], pod.ip);
        doc.setIn(['status', 'phase'], 'Running');
      }
    }
    out.push(doc.toString());
  }
  fs.mkdirSync(configDir(state.lab), { recursive: true });
  const tmp = `${meshConfigFile(state.lab)}.tmp`;
  fs.writeFileSync(tmp, out.join('---\n'));
  // rename: the watcher never sees a half-written file
  fs.renameSync(tmp, meshConfigFile(state.lab));
}

export function nodeTokensFile(lab: string): string {
  return path.join(labDir(lab), 'node-tokens.json');
}

/** A node agent's credential for the CA, kept in its state dir. */
export function nodeTokenFile(stateDir: string): string {
  return path.join(stateDir, 'ca-token');
}

/**
 * Provisions one random credential per node, as a cluster installer would: the control plane gets the
 * node -> token map, each node's agent only its own token. With them the CA knows which node asks.
 */
export function provisionNodeTokens(state: LabState): void {
  const tokens: Record<string, string> = {};
  for (const n of state.nodes) {
    tokens[n.name] = randomBytes(24).toString('base64url');
    fs.mkdirSync(n.stateDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(nodeTokenFile(n.stateDir), tokens[n.name]!, { mode: 0o600 });
  }
  fs.writeFileSync(nodeTokensFile(state.lab), JSON.stringify(tokens, null, 2), { mode: 0o600 });
}

/** The dashboard's preferred port on the host's loopback; taken (another lab, another program): any free one. */
export const LAB_DASHBOARD_PORT = 15080;

/**
 * A listening socket on the host's 127.0.0.1 (where a browser is) for the control plane in the fabric netns
 * to serve the dashboard on: the lab passes it as an inherited fd, nothing in the host's netns changes.
 */
async function dashboardSocket(): Promise<{ server: net.Server; fd: number; url: string }> {
  const listen = (port: number): Promise<net.Server> =>
    new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
    });
  let server: net.Server;
  try {
    server = await listen(LAB_DASHBOARD_PORT);
  } catch {
    server = await listen(0);
  }
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const port = (server.address() as net.AddressInfo).port;
  return { server, fd, url: `http://127.0.0.1:${port}/` };
}

/** Starts the control plane in the fabric netns (its metrics port stays inside the lab) and its own cgroup. */
export async function spawnControlPlane(state: LabState): Promise<Started> {
  const cg = path.join(state.labCgroup, 'controlplane');
  mkCgroup(cg);
  const sock = xdsSocket(state.lab);
  const dash = await dashboardSocket();
  const argv = [
    process.execPath, DEFAULT_CLI, 'controlplane',
    '--config', configDir(state.lab),
    '--xds-address', `unix://${sock}`,
    '--ca-dir', path.join(labDir(state.lab), 'ca'),
    '--node-tokens', nodeTokensFile(state.lab),
    '--log-level', state.agentLogLevel,
    '--dashboard-fd', '3',
    '--dashboard-url', dash.url,
  ];
  if (state.prometheus) argv.push('--prometheus-url', `http://${state.prometheus.address}`);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NODEMESH_LAB: state.lab };
  const log = path.join(state.logDir, 'controlplane.log');
  let started: Started;
  try {
    started = await startDetached({ cgroup: cg, netns: state.fabricNetns, argv, env }, log, [dash.fd]);
  } finally {
    // The child has its own copy of the socket; ours would only keep the port open after it exits.
    dash.server.close();
  }
  state.controlPlane = { ref: started.ref, cgroup: cg, log, xdsSocket: sock, configDir: configDir(state.lab), dashboardUrl: dash.url };
  writeState(state);
  await waitListening(sock, started, log, 20_000);
  return started;
}

async function waitListening(sock: string, started: Started, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (started.exit) {
      throw new LabError('NM_LAB_CONTROLPLANE', `the lab control plane exited at start; last log lines:\n${logTail(log)}`, { hint: `check the Services and policies in the lab file; log: ${log}` });
    }
    if (await canConnect(sock)) return;
    if (Date.now() > deadline) throw new LabError('NM_LAB_CONTROLPLANE', `the lab control plane did not listen on ${sock} within ${timeoutMs} ms`, { hint: `log: ${log}` });
    await sleep(50);
  }
}

function canConnect(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Stops the lab's control plane (tests of control-plane loss); agents keep their last config. */
export async function stopControlPlane(lab: string, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
  const state = readState(checkLabName(lab));
  const cp = state.controlPlane;
  if (!cp) throw new LabError('NM_LAB_NOT_FOUND', `lab "${lab}" has no control plane`);
  if (procAlive(cp.ref)) process.kill(cp.ref.pid, signal);
  const deadline = Date.now() + timeoutMs;
  while (procAlive(cp.ref) && Date.now() < deadline) await sleep(50);
  if (procAlive(cp.ref)) killCgroup(cp.cgroup);
}

/** Starts the lab's control plane again (after stopControlPlane). */
export async function startControlPlane(lab: string): Promise<void> {
  const state = readState(checkLabName(lab));
  if (state.controlPlane && procAlive(state.controlPlane.ref)) return;
  if (state.kubernetes) {
    // Kubernetes mode: the control plane as lab up started it, its config from the API server.
    const [{ KubeApi }, { startKubeControlPlane }, { silentLogger }] = await Promise.all([import('./kube/api-client'), import('./kube/mesh-processes'), import('./log')]);
    await startKubeControlPlane({ state, api: await KubeApi.load(state.kubernetes.adminKubeconfig), log: silentLogger });
    return;
  }
  await spawnControlPlane(state);
}
