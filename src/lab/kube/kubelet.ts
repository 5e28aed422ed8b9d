// The lab as the kubelet of its nodes: it registers each node as a Node object, and runs each pod as a kubelet and
// its container runtime would: the Pod object bound to its node, then the pod's cgroup (named after its uid, as
// the kubelet names it) and network namespace, then the node's conflist invoked with CNI_COMMAND=ADD (nodemesh-cni,
// chained last by the node's agent, enrolls the pod with the agent), then the containers, then the status with the
// pod's IP and Ready. The lab itself never calls the enrollment API here.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { wanted } from '../../enroll/membership';
import { EnrollClient } from '../../enroll/client';
import { PLUGIN_TYPE } from '../../cni/install';
import { mkCgroup } from '../cgroups';
import { LabError } from '../errors';
import type { LabLogger } from '../log';
import type { PodSpec } from '../manifest';
import { startDetached, type Started } from '../processes';
import { run } from '../run';
import { writeState, type LabState, type NodeState, type PodState } from '../state';
import { expandVars } from '../up';
import { describeRef, statusMessage, type KubeApi, type ObjectRef } from './api-client';
import { describeRuns, readConflist, runConflist, type CniCall } from './cni-runtime';
import { LabKubeError } from './errors';
import { nodeCniDirs, type KubeLabState, type PodSandbox } from './kube-state';
import { LAB_IMAGE, nodeObject, nodeStatus, podObject, runningPodStatus, type Obj } from './objects';

/** Debian's containernetworking-plugins. */
export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface KubeletContext {
  state: LabState;
  api: KubeApi;
  log: LabLogger;
}

export function kubeOf(state: LabState): KubeLabState {
  if (!state.kubernetes) throw new Error(`lab ${state.lab} is not in Kubernetes mode`);
  return state.kubernetes;
}

export function recordCreated(state: LabState, ref: ObjectRef): void {
  kubeOf(state).created.push(ref);
  writeState(state);
}

/** POSTs a new object (never overwriting one the lab did not make); returns what the server stored. */
export async function createObject<T = Obj>(ctx: KubeletContext, obj: Obj, where?: string): Promise<T> {
  const meta = obj.metadata as { name: string; namespace?: string };
  const ref: ObjectRef = { apiVersion: String(obj.apiVersion), kind: String(obj.kind), name: meta.name, namespace: meta.namespace };
  const p = await ctx.api.pathOf(ref);
  const r = await ctx.api.request<T>('POST', p.slice(0, p.lastIndexOf('/')), obj);
  if (r.status === 409) {
    throw new LabKubeError('NM_LAB_KUBE_OBJECT', `${where ? `${where}: ` : ''}${describeRef(ref)} already exists in the API server ${ctx.api.server}`, {
      hint: 'another lab (or a real cluster) uses that name: remove it, rename it in the lab file, or use another API server',
    });
  }
  if (r.status < 200 || r.status > 299) {
    throw new LabKubeError('NM_LAB_KUBE_OBJECT', `${where ? `${where}: ` : ''}the API server refused ${describeRef(ref)}: ${statusMessage(r)}`, { hint: 'fix the object in the lab file' });
  }
  recordCreated(ctx.state, ref);
  return r.body;
}

/** A Node object per lab node, Ready, with its fabric address and pod range. */
export async function registerNodes(ctx: KubeletContext): Promise<void> {
  for (const n of ctx.state.nodes) {
    await createObject(ctx, nodeObject(ctx.state.lab, n));
    await ctx.api.patchSubresource({ apiVersion: 'v1', kind: 'Node', name: n.name }, 'status', nodeStatus(n));
  }
}

/** Whether the agent will take the pod: the agent's own rule (namespace label, pod annotation). */
export function podWanted(spec: Pick<PodSpec, 'namespace' | 'annotations'>, namespaceLabels: Record<string, string> | undefined): boolean {
  return wanted({ namespace: spec.namespace, annotations: spec.annotations, hostNetwork: false }, namespaceLabels).wanted;
}

function findNode(state: LabState, name: string): NodeState {
  const n = state.nodes.find((x) => x.name === name);
  if (!n) throw new LabKubeError('NM_LAB_KUBE_PLAN', `no node "${name}" in lab ${state.lab}`, { hint: `nodes: ${state.nodes.map((x) => x.name).join(', ')}` });
  return n;
}

/** How the runtime calls the node's plugins for this pod. */
function cniCall(state: LabState, node: NodeState, pod: PodState, sandbox: PodSandbox, pinnedIp?: string): CniCall {
  return {
    containerId: sandbox.containerId,
    netns: pod.netnsPath,
    ifname: 'eth0',
    args: {
      K8S_POD_NAMESPACE: pod.namespace,
      K8S_POD_NAME: pod.name,
      K8S_POD_INFRA_CONTAINER_ID: sandbox.containerId,
      K8S_POD_UID: pod.uid,
      ...(pinnedIp ? { IP: pinnedIp } : {}),
    },
    binDirs: [nodeCniDirs(state.lab, node.name).binDir, REFERENCE_PLUGINS],
    hostNetns: node.netns,
  };
}

function startContainers(pod: PodState, spec: PodSpec): Promise<Started[]> {
  return Promise.all(
    pod.containers.map(async (c) => {
      const env = { ...pod.env, ...(spec.containers.find((x) => x.name === c.name)?.env ?? {}) };
      const s = await startDetached({ cgroup: pod.cgroup, netns: pod.netns, argv: c.argv.map((a) => expandVars(a, env)), env }, c.log);
      c.proc = s.ref;
      return s;
    }),
  );
}

/** Is the pod enrolled with its node's agent now? */
async function enrolledNow(node: NodeState, uid: string): Promise<boolean> {
  const pods = await new EnrollClient(node.enrollSocket).list().catch(() => []);
  return pods.some((p) => p.uid === uid);
}

/**
 * Runs one pod (see the header). `raw` is the Pod as the lab file has it. Throws LabKubeError when the API or a CNI
 * plugin refuses it, and LabError NM_LAB_ENROLL_FAILED when the mesh should have taken it and did not (its containers
 * are then not started, as with the file mode), unless `requireEnrollment` is false: a pod that starts while its
 * node's agent is away runs unmeshed until the agent's reconcile takes it.
 */
export async function runKubePod(ctx: KubeletContext, pod: PodState, spec: PodSpec, raw: Obj | undefined, opts: { requireEnrollment?: boolean } = {}): Promise<Started[]> {
  const { state, api } = ctx;
  const node = findNode(state, pod.node);
  const where = `${spec.loc.file}:${spec.loc.line}`;
  const obj = podObject(state.lab, raw, spec);
  const created = await createObject<{ metadata: { uid: string } }>(ctx, obj, where);
  pod.uid = created.metadata.uid;
  pod.cgroup = path.join(node.podsCgroup, `pod${pod.uid}`);
  writeState(state);

  // The sandbox: cgroup and network namespace first (the plugins need the namespace; nodemesh-cni the cgroup).
  mkCgroup(pod.cgroup);
  await run(['ip', 'netns', 'add', pod.netns]);
  pod.created = true;
  const { file, list } = readConflist(nodeCniDirs(state.lab, node.name).confDir);
  const sandbox: PodSandbox = { containerId: randomBytes(32).toString('hex'), conflist: file };
  kubeOf(state).sandboxes[pod.key] = sandbox;
  writeState(state);
  const add = await runConflist(list, 'ADD', cniCall(state, node, pod, sandbox, spec.podIP));
  if (!add.ok) {
    throw new LabKubeError('NM_LAB_KUBE_CNI', `${where}: CNI ADD of pod ${pod.namespace}/${pod.name} on node ${node.name} failed (${path.basename(file)}): ${describeRuns(add.runs)}`, {
      hint: 'the runtime undid the chain (DEL); see the plugin output above',
    });
  }
  sandbox.result = add.result ?? undefined;
  const ips = ((add.result?.ips ?? []) as { address?: string }[]).map((i) => String(i.address ?? '').split('/')[0]!).filter(Boolean);
  if (ips.length === 0) throw new LabKubeError('NM_LAB_KUBE_CNI', `${where}: the CNI chain gave pod ${pod.namespace}/${pod.name} no IP: ${describeRuns(add.runs)}`);
  pod.ip = ips[0]!;
  pod.env.POD_IP = pod.ip;
  writeState(state);

  const meshCni = add.runs.find((r) => r.type === PLUGIN_TYPE);
  pod.enrolled = await enrolledNow(node, pod.uid);
  if (pod.enroll && !pod.enrolled) {
    pod.enrollError = meshCni ? meshCni.stderr.trim() || 'nodemesh-cni passed the pod through unenrolled' : `${path.basename(file)} has no ${PLUGIN_TYPE} entry (is the agent of ${node.name} running?)`;
    writeState(state);
    if (opts.requireEnrollment === false) ctx.log.info(`pod ${pod.namespace}/${pod.name} runs unmeshed for now: ${pod.enrollError}`);
    else throw new LabError('NM_LAB_ENROLL_FAILED', `pod ${pod.namespace}/${pod.name} was not enrolled by CNI on node ${node.name}: ${pod.enrollError}`, { hint: `see the agent log ${node.agentLog}` });
  }
  ctx.log.debug(`pod ${pod.namespace}/${pod.name} wired on ${node.name} with ${pod.ip}${pod.enrolled ? ', enrolled through nodemesh-cni' : ''}`);

  const started = await startContainers(pod, spec);
  writeState(state);
  const images = Object.fromEntries(((obj.spec as Obj).containers as Obj[]).map((c) => [String(c.name), String(c.image ?? LAB_IMAGE)]));
  await api.patchSubresource({ apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace }, 'status', runningPodStatus(pod, node.fabricIP, new Date(), images));
  return started;
}

/** CNI DEL of a pod's sandbox, as a runtime tears it down; plugins no longer installed (nodemesh-cni) are skipped. */
export async function deleteSandbox(state: LabState, pod: PodState, timeoutMs = 10_000): Promise<string | null> {
  const sandbox = state.kubernetes?.sandboxes[pod.key];
  const node = state.nodes.find((n) => n.name === pod.node);
  if (!sandbox || !node) return null;
  let list;
  try {
    list = JSON.parse(fs.readFileSync(sandbox.conflist, 'utf8')) as { cniVersion: string; name: string; plugins: Obj[] };
  } catch {
    return null; // the node's CNI dir is gone already: so is everything the plugins made in it
  }
  const call = { ...cniCall(state, node, pod, sandbox), timeoutMs };
  const present = list.plugins.filter((p) => call.binDirs.some((d) => fs.existsSync(path.join(d, String(p.type)))));
  const r = await runConflist({ ...list, plugins: present }, 'DEL', call, sandbox.result);
  return r.ok ? null : `CNI DEL of pod ${pod.namespace}/${pod.name}: ${describeRuns(r.runs)}`;
}
