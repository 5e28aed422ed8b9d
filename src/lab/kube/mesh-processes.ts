// nodemesh itself in a Kubernetes-mode lab, configured as its install configures it, all from the API server: the
// control plane with --kubernetes (its CA in the Secret cacerts, the root published as a ConfigMap in every
// namespace, xDS and the CA over TLS on 198.18.0.254:15012), and per node an agent with --kubernetes that
// authenticates with projected ServiceAccount tokens bound to its agent Pod (checked by TokenReview), installs
// nodemesh-cni into its node's CNI dirs and reconciles its node's pods. The lab mints the tokens and writes the files
// a kubelet would mount into the agent pod.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PLUGIN_TYPE } from '../../cni/install';
import { mkCgroup } from '../cgroups';
import { xdsSocket } from '../controlplane';
import { DEFAULT_CLI } from '../paths';
import { logTail, startDetached, type Started } from '../processes';
import { sleep } from '../run';
import { writeState, type LabState, type NodeState } from '../state';
import { labKubeconfig } from './api-access';
import { writeKubeconfig } from './api-server';
import { LabKubeError } from './errors';
import { agentFiles, agentPodName, controlPlaneKubeconfig, CP_SECURE_ADDRESS, nodeCniDirs } from './kube-state';
import { nodeConflist, writeNodeConflist } from './kube-network';
import { createObject, type KubeletContext } from './kubelet';
import { refOf } from './api-client';
import { AGENT_SA, agentPodObject, CA_SECRET, CONTROLPLANE_SA, MESH_NAMESPACE, meshWorkloadObjects, meshWorkloadStatus, ROOT_CONFIGMAP, runningPodStatus } from './objects';
import { procAlive } from '../state';

/** The audience of the agents' CA tokens (the install's). */
export const CA_AUDIENCE = 'nodemesh-ca';
/** Lifetime asked for the tokens the lab mints: nothing renews them in a lab, so a week. */
export const TOKEN_SECONDS = 7 * 86_400;

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

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, fail?: () => string | null): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stop = fail?.();
    if (stop) throw new LabKubeError('NM_LAB_KUBE_TIMEOUT', stop);
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new LabKubeError('NM_LAB_KUBE_TIMEOUT', `${what} did not happen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Starts the control plane in the fabric namespace; resolves once it serves and has published the mesh root. */
export async function startKubeControlPlane(ctx: KubeletContext, timeoutMs = 30_000): Promise<Started> {
  const { state, api } = ctx;
  const token = await api.mintToken(MESH_NAMESPACE, CONTROLPLANE_SA, { expirationSeconds: TOKEN_SECONDS });
  const kubeconfig = writeKubeconfig(controlPlaneKubeconfig(state.lab), labKubeconfig(state, token));
  const cg = path.join(state.labCgroup, 'controlplane');
  mkCgroup(cg);
  const sock = xdsSocket(state.lab);
  const argv = [
    process.execPath, DEFAULT_CLI, 'controlplane',
    '--kubernetes', '--kubeconfig', kubeconfig,
    '--xds-address', `unix://${sock}`,
    '--secure-address', CP_SECURE_ADDRESS,
    '--tls-names', `nodemesh-controlplane.${MESH_NAMESPACE}.svc`,
    '--ca-secret', CA_SECRET, '--ca-secret-namespace', MESH_NAMESPACE,
    '--root-configmap', ROOT_CONFIGMAP,
    '--ca-agent-namespace', MESH_NAMESPACE, '--ca-audience', CA_AUDIENCE,
    '--log-level', state.agentLogLevel,
  ];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NODEMESH_LAB: state.lab, POD_NAMESPACE: MESH_NAMESPACE };
  const log = path.join(state.logDir, 'controlplane.log');
  const started = await startDetached({ cgroup: cg, netns: state.fabricNetns, argv, env }, log);
  state.controlPlane = { ref: started.ref, cgroup: cg, log, xdsSocket: sock, configDir: '' };
  writeState(state);
  const exited = (): string | null => (started.exit ? `the lab's control plane exited at start; last log lines:\n${logTail(log)}` : null);
  await until(`the control plane listening on ${sock}`, timeoutMs, () => canConnect(sock), exited);
  const root = await until(`the mesh root ConfigMap ${MESH_NAMESPACE}/${ROOT_CONFIGMAP}`, timeoutMs, async () => {
    const cm = await api.get<{ data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: MESH_NAMESPACE, name: ROOT_CONFIGMAP });
    return cm?.data?.['root-cert.pem'];
  }, exited);
  // What the agent pods mount from that ConfigMap.
  for (const n of state.nodes) {
    const f = agentFiles(state.lab, n.name).root;
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, root);
  }
  return started;
}

/**
 * Everything a node's agent needs before it starts: its Pod (the anchor of its tokens), the tokens and kubeconfig,
 * the node's conflist (without nodemesh-cni: the agent adds itself) and the entry nodemesh-cni gets in it.
 */
export async function prepareKubeAgent(ctx: KubeletContext, n: NodeState): Promise<void> {
  const { state, api } = ctx;
  const pod = await createObject<{ metadata: { uid: string } }>(ctx, agentPodObject(state.lab, n));
  const bound = { name: agentPodName(n.name), uid: pod.metadata.uid };
  await api.patchSubresource({ apiVersion: 'v1', kind: 'Pod', namespace: MESH_NAMESPACE, name: bound.name }, 'status', runningPodStatus({ ip: n.fabricIP, containers: [{ name: 'agent', argv: [], log: n.agentLog }] }, n.fabricIP, new Date(), {}));
  const files = agentFiles(state.lab, n.name);
  fs.mkdirSync(path.dirname(files.kubeconfig), { recursive: true, mode: 0o700 });
  const apiToken = await api.mintToken(MESH_NAMESPACE, AGENT_SA, { pod: bound, expirationSeconds: TOKEN_SECONDS });
  writeKubeconfig(files.kubeconfig, labKubeconfig(state, apiToken));
  fs.writeFileSync(files.caToken, await api.mintToken(MESH_NAMESPACE, AGENT_SA, { audiences: [CA_AUDIENCE], pod: bound, expirationSeconds: TOKEN_SECONDS }), { mode: 0o600 });
  const dirs = nodeCniDirs(state.lab, n.name);
  const plan = { cidr: n.cidr, gateway: n.gateway };
  writeNodeConflist(dirs.confDir, nodeConflist(plan, dirs.ipamDir));
  fs.mkdirSync(dirs.binDir, { recursive: true });
  // The plugin reads fail-closed annotations with the agent's credentials when the agent is down.
  fs.writeFileSync(dirs.pluginConfig, `${JSON.stringify({ enrollSocket: n.enrollSocket, kubeconfig: files.kubeconfig, logLevel: state.agentLogLevel }, null, 2)}\n`);
}

/** Resolves once the node's agent has chained nodemesh-cni into the node's conflist (it does so at start). */
export async function waitCniInstalled(state: LabState, n: NodeState, timeoutMs = 20_000): Promise<void> {
  const confDir = nodeCniDirs(state.lab, n.name).confDir;
  await until(`nodemesh-cni chained into ${confDir} by the agent of ${n.name}`, timeoutMs, async () => {
    for (const f of fs.readdirSync(confDir).filter((x) => x.endsWith('.conflist'))) {
      const text = fs.readFileSync(path.join(confDir, f), 'utf8');
      if (text.includes(`"${PLUGIN_TYPE}"`)) return true;
    }
    return false;
  });
}

/**
 * The install's agent DaemonSet and control-plane Deployment, where missing (see meshWorkloadObjects); returns the
 * kinds the lab created, whose status it keeps.
 */
export async function createMeshWorkloads(ctx: KubeletContext): Promise<string[]> {
  const v = await ctx.api.must<{ minor?: string }>('GET', '/version', undefined, { what: 'reading the API server\'s version' });
  const minor = Number.parseInt(String(v.minor ?? ''), 10);
  const made: string[] = [];
  for (const o of meshWorkloadObjects(Number.isFinite(minor) ? minor : 99)) {
    if (await ctx.api.get(refOf(o))) continue; // a real install's: not the lab's to touch
    await createObject(ctx, o);
    made.push(String(o.kind));
  }
  const k = ctx.state.kubernetes!;
  k.workloads = made;
  writeState(ctx.state);
  return made;
}

/** Writes the status of the workloads the lab created from what runs now (agents ready, the control plane alive). */
export async function writeMeshWorkloadStatus(ctx: KubeletContext): Promise<void> {
  const { state, api } = ctx;
  const ready = state.nodes.filter((n) => n.ready && procAlive(n.agent)).length;
  for (const o of meshWorkloadObjects(99).filter((x) => state.kubernetes?.workloads?.includes(String(x.kind)))) {
    await api.patchSubresource(refOf(o), 'status', meshWorkloadStatus(String(o.kind), state.nodes.length, ready, procAlive(state.controlPlane?.ref)));
  }
}

/** After an agent stopped or started: the DaemonSet's status follows, as its controller's would (best effort). */
export async function refreshMeshWorkloadStatus(state: LabState): Promise<void> {
  if (!state.kubernetes?.workloads?.length) return;
  try {
    const { KubeApi } = await import('./api-client');
    const { silentLogger } = await import('../log');
    await writeMeshWorkloadStatus({ state, api: await KubeApi.load(state.kubernetes.adminKubeconfig), log: silentLogger });
  } catch {
    // the API server may be away (a test of that); the status catches up with the next change
  }
}
