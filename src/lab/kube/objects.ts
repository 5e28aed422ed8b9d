// How a lab maps onto API objects. The lab file is Kubernetes YAML already, so its objects go to the API server as
// written, plus what a cluster would hold around them:
// - nodemesh's own namespace, ServiceAccounts, RBAC and CRD, taken from `nodemesh install` (so the control plane and
//   agents run with the rights the install grants them, no more);
// - CRDs for the kinds the control plane watches (Gateway API routes, Istio policies), when the API server lacks them:
//   every version the control plane reads, schema left open (the control plane validates; these are the lab's
//   stand-ins, not the projects' own definitions);
// - a Node per lab node (InternalIP = its fabric address, podCIDR = its pod range), and the agent pods on them;
// - the namespaces and ServiceAccounts the pods name;
// - each Pod with the image the API requires (the lab runs commands on the host: `image` only names that).

import { installObjects } from '../../install/render';
import { defaultValues } from '../../install/values';
import { KNOWN_KINDS } from '../../controlplane/objects';
import { MESH_LABEL } from '../../enroll/membership';
import { WATCHED_RESOURCES } from '../../controlplane/kubernetes-source';
import type { NodeState, PodState } from '../state';
import type { PodSpec } from '../manifest';
import { agentPodName, LAB_LABEL } from './kube-state';

export type Obj = Record<string, unknown>;

/** The image given to containers that name none. */
export const LAB_IMAGE = 'nodemesh.io/lab-host:none';
export const MESH_NAMESPACE = 'nodemesh-system';
export const ROOT_CONFIGMAP = 'nodemesh-ca-root-cert';
export const AGENT_SA = 'nodemesh-agent';
export const CONTROLPLANE_SA = 'nodemesh-controlplane';
export const CA_SECRET = 'cacerts';

/** The objects of `nodemesh install` that give nodemesh its identity and rights: no workloads (the lab runs those). */
export function meshBootstrapObjects(): Obj[] {
  const keep = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'CustomResourceDefinition']);
  return installObjects(defaultValues()).filter((o) => keep.has(o.kind)) as unknown as Obj[];
}

export const AGENT_DAEMONSET = 'nodemesh-agent';
export const CONTROLPLANE_DEPLOYMENT = 'nodemesh-controlplane';

/**
 * The install's agent DaemonSet and control-plane Deployment, as records of what runs: no controller here makes
 * their pods (the lab runs agents and the control plane itself), but an agent tells a restart from an uninstall by
 * its DaemonSet, and `check --proxy` reads both. One control-plane replica, as the lab runs; on an API server before
 * 1.22 the DaemonSet rolls with maxUnavailable 1 (no DaemonSet maxSurge there).
 */
export function meshWorkloadObjects(serverMinor: number): Obj[] {
  const values = defaultValues();
  values.controlPlane = { ...values.controlPlane, replicas: 1 };
  const out = installObjects(values).filter((o) => (o.kind === 'DaemonSet' && o.metadata.name === AGENT_DAEMONSET) || (o.kind === 'Deployment' && o.metadata.name === CONTROLPLANE_DEPLOYMENT)) as unknown as Obj[];
  for (const o of out) {
    (o.metadata as Obj).labels = { ...((o.metadata as Obj).labels as Record<string, string> | undefined), 'app.kubernetes.io/managed-by': 'nodemesh-lab' };
    if (o.kind === 'DaemonSet' && serverMinor < 22) (o.spec as Obj).updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } };
  }
  return out;
}

/** The status a DaemonSet controller and a Deployment controller would write for what the lab runs. */
export function meshWorkloadStatus(kind: string, nodes: number, readyAgents: number, controlPlaneReady: boolean): Obj {
  if (kind === 'DaemonSet') {
    return { status: { currentNumberScheduled: nodes, desiredNumberScheduled: nodes, numberMisscheduled: 0, numberReady: readyAgents, numberAvailable: readyAgents, updatedNumberScheduled: nodes, observedGeneration: 1 } };
  }
  const ready = controlPlaneReady ? 1 : 0;
  return { status: { replicas: 1, updatedReplicas: 1, readyReplicas: ready, availableReplicas: ready, observedGeneration: 1 } };
}

/** Stand-in CRDs for every custom kind the control plane watches, each serving the versions it reads. */
export function watchedKindCrds(): Obj[] {
  const out: Obj[] = [];
  for (const r of WATCHED_RESOURCES) {
    if (!r.group) continue;
    const served = (KNOWN_KINDS[r.kind] as readonly string[]).map((v) => v.slice(v.indexOf('/') + 1));
    const versions = [r.version, ...served.filter((v) => v !== r.version)].map((name, i) => ({
      name,
      served: true,
      storage: i === 0,
      subresources: { status: {} },
      schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
    }));
    const singular = r.kind.toLowerCase();
    out.push({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {
        name: `${r.plural}.${r.group}`,
        labels: { 'app.kubernetes.io/managed-by': 'nodemesh-lab' },
        // *.k8s.io groups must say whether their API went through Kubernetes review; a stand-in did not.
        ...(r.group.endsWith('.k8s.io') ? { annotations: { 'api-approved.kubernetes.io': 'unapproved, a nodemesh lab stand-in' } } : {}),
      },
      spec: { group: r.group, names: { kind: r.kind, plural: r.plural, singular, listKind: `${r.kind}List` }, scope: 'Namespaced', versions },
    });
  }
  return out;
}

export function nodeObject(lab: string, n: NodeState): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { [LAB_LABEL]: lab, 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' } },
    spec: { podCIDR: n.cidr, podCIDRs: [n.cidr] },
  };
}

export function nodeStatus(n: NodeState): Obj {
  const now = new Date().toISOString();
  return {
    status: {
      addresses: [
        { type: 'InternalIP', address: n.fabricIP },
        { type: 'Hostname', address: n.name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'NodemeshLabNode', message: 'a nodemesh lab node (network namespace)', lastHeartbeatTime: now, lastTransitionTime: now }],
      capacity: { pods: '253' },
      allocatable: { pods: '253' },
      nodeInfo: {
        kubeletVersion: 'nodemesh-lab',
        kubeProxyVersion: 'none',
        operatingSystem: 'linux',
        architecture: process.arch === 'x64' ? 'amd64' : process.arch,
        containerRuntimeVersion: 'nodemesh-lab://processes',
        osImage: 'nodemesh lab',
        kernelVersion: '',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    },
  };
}

export function namespaceObject(lab: string, name: string, meshed: boolean): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { [LAB_LABEL]: lab, ...(meshed ? { [MESH_LABEL]: 'enabled' } : {}) } } };
}

export function serviceAccountObject(lab: string, namespace: string, name: string): Obj {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels: { [LAB_LABEL]: lab } } };
}

/**
 * The Pod as the lab file has it (metadata, spec), bound to its node; what only a kubelet or the API server writes
 * (status, uid, resourceVersion) is dropped. Environment values become strings, as the lab runs them.
 */
export function podObject(lab: string, raw: Obj | undefined, spec: PodSpec): Obj {
  const src = JSON.parse(JSON.stringify(raw ?? {})) as Obj;
  const meta = { ...((src.metadata ?? {}) as Obj) };
  for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields', 'selfLink']) delete meta[k];
  meta.name = spec.name;
  meta.namespace = spec.namespace;
  meta.labels = { ...spec.labels, [LAB_LABEL]: lab };
  const podSpec = { ...((src.spec ?? {}) as Obj) };
  podSpec.nodeName = spec.nodeName;
  podSpec.serviceAccountName = spec.serviceAccount;
  const containers = Array.isArray(podSpec.containers) ? (podSpec.containers as Obj[]) : [];
  podSpec.containers = containers.map((c) => {
    const out: Obj = { ...c, image: typeof c.image === 'string' && c.image ? c.image : LAB_IMAGE };
    if (Array.isArray(c.env)) out.env = (c.env as Obj[]).map((e) => ({ name: e.name, value: e.value === undefined || e.value === null ? '' : String(e.value) }));
    return out;
  });
  return { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec: podSpec };
}

const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The status a kubelet writes once the sandbox is wired and the containers run. */
export function runningPodStatus(p: Pick<PodState, 'ip' | 'containers'>, hostIP: string, started: Date, images: Record<string, string>): Obj {
  const t = rfc3339(started);
  const conditions = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: t }));
  return {
    status: {
      phase: 'Running',
      hostIP,
      podIP: p.ip,
      podIPs: [{ ip: p.ip }],
      startTime: t,
      conditions,
      containerStatuses: p.containers.map((c) => ({
        name: c.name,
        ready: true,
        started: true,
        restartCount: 0,
        image: images[c.name] ?? LAB_IMAGE,
        imageID: '',
        containerID: c.proc ? `nodemesh-lab://${c.proc.pid}` : undefined,
        state: { running: { startedAt: t } },
      })),
    },
  };
}

/**
 * The agent's pod on a node (hostNetwork, ServiceAccount nodemesh-agent): its projected tokens are bound to it, and
 * the CA takes the node of a token from this pod. It opts out of the mesh: a host-network pod is the node itself.
 */
export function agentPodObject(lab: string, n: NodeState): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: agentPodName(n.name),
      namespace: MESH_NAMESPACE,
      labels: { [LAB_LABEL]: lab, 'app.kubernetes.io/name': 'nodemesh-agent', 'app.kubernetes.io/part-of': 'nodemesh' },
      annotations: { 'nodemesh.io/enroll': 'false' },
    },
    spec: {
      nodeName: n.name,
      serviceAccountName: AGENT_SA,
      hostNetwork: true,
      containers: [{ name: 'agent', image: LAB_IMAGE, args: ['agent', `--node=${n.name}`] }],
    },
  };
}
