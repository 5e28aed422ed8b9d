// Derives the mesh model from stored objects: service VIPs (the older Service keeps a contested one), pod IPs (of
// two pods with one IP, one holds it), ports with resolved endpoints, workloads per node.

import { canonicalIp } from '../util/ip';
import { outboundClusterName, serviceHost, serviceListenerName, vipListenerName } from '../xds/resource-types';
import type { PodObject, PolicyObject, ServiceObject, ServicePort } from './objects';
import { PolicyIndex, type WorkloadPolicy } from './policy';
import { portProtocol } from './routes/protocol';
import type { VipAllocator } from './vip-allocator';
import type { PortProtocol } from '../state/routes';
import type { RouteModel } from './routes/route-tables';
import type { TrafficModel } from './traffic/traffic-model';

/** One backend of a service port: what agents need to reach and identify the workload. */
export interface EndpointModel {
  address: string;
  port: number;
  pod: string;
  namespace: string;
  serviceAccount: string;
  /** Empty when the pod names no node. */
  node: string;
  inMesh: boolean;
  /** The pod's `app` and `version` labels, for the source agent's request metrics (Istio's destination_app/version). */
  app?: string;
  version?: string;
}

export interface ServicePortModel {
  port: ServicePort;
  /** appProtocol, then the port name, else detect (routes/protocol.ts). */
  protocol: PortProtocol;
  clusterName: string;
  /** Listener and RouteConfiguration name for proxyless gRPC (`HOST:PORT`). */
  listenerName: string;
  /** Undefined for headless services. */
  vipListenerName?: string;
  endpoints: EndpointModel[];
}

export interface ServiceModel {
  name: string;
  namespace: string;
  host: string;
  /** Undefined for headless services (clusterIP: None). */
  vip?: string;
  ports: ServicePortModel[];
  /** The Service's rate budget for retries (nodemesh.io/retry-budget-* annotations), when it sets one. */
  retryBudget?: ServiceObject['retryBudget'];
  /**
   * What it was built from: the store's Service object, its VIP, its backing pods (the store's objects) and
   * the domain. The same elements (===) mean the same model, which translation's memo checks before
   * fingerprinting the model.
   */
  sources?: readonly unknown[];
}

/**
 * A Service that asks for a clusterIP:port an older Service already has. Kubernetes would have refused it;
 * here it is served without its VIP (by name only) until the older one is gone or either changes, so the
 * older Service's traffic never moves.
 */
export interface VipConflict {
  vip: string;
  /** What both claim on the VIP, as `PROTOCOL/port`. */
  ports: string[];
  /** `namespace/name` of the older Service, which keeps the VIP. */
  kept: string;
  /** `namespace/name` of the newer one. */
  refused: string;
}

/**
 * A pod whose status gives an IP another pod holds. Two live pods cannot own one address, so one record is
 * stale or wrong: the pod that holds it is the one not being deleted, else the older. The other is served as if it
 * had no IP yet (no endpoint, no inbound listener) until either changes, so the holder's traffic never moves.
 */
export interface PodIpConflict {
  ip: string;
  /** `namespace/name` of the pod that keeps the IP. */
  kept: string;
  /** `namespace/name` of the one served without it. */
  refused: string;
  /** Why the kept one won: it is older, or the refused one is being deleted. */
  reason: 'older' | 'refused-deleting';
}

export interface MeshModel {
  services: ServiceModel[];
  /** Services served without their VIP because an older one has it (see VipConflict). */
  vipConflicts?: VipConflict[];
  /** Pods served without their IP because another pod holds it (see PodIpConflict). */
  podIpConflicts?: PodIpConflict[];
  /** In-mesh pods with an IP, per node name. */
  workloadsByNode: Map<string, PodObject[]>;
  /** Security policy per in-mesh pod (`ns/name`); a pod missing here gets PERMISSIVE and allow-all. */
  policies?: Map<string, WorkloadPolicy>;
  /** Route tables of the HTTP ports and route status (routes/route-tables.ts); absent: default tables. */
  routes?: RouteModel;
  /** DestinationRules per Service port and their status (traffic/traffic-model.ts); absent: every default. */
  traffic?: TrafficModel;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Code-point order: names are DNS labels, and locale-aware comparison costs more than the whole model at scale. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Pods by namespace and by each `key=value` label, so a selector is matched against the pods that carry its
 * rarest pair instead of every pod of the namespace (services x pods is the model's cost at scale).
 */
class SelectorIndex {
  private readonly byNs = new Map<string, { all: PodObject[]; byLabel: Map<string, PodObject[]> }>();

  constructor(pods: PodObject[]) {
    for (const p of pods) {
      let ns = this.byNs.get(p.meta.namespace);
      if (!ns) this.byNs.set(p.meta.namespace, (ns = { all: [], byLabel: new Map() }));
      ns.all.push(p);
      for (const k in p.meta.labels) {
        const key = `${k}=${p.meta.labels[k]}`;
        const list = ns.byLabel.get(key);
        if (list) list.push(p);
        else ns.byLabel.set(key, [p]);
      }
    }
  }

  /** Pods of `namespace` matching every pair of `selector` (an empty selector matches every pod, as Kubernetes). */
  select(namespace: string, selector: Record<string, string>): PodObject[] {
    const ns = this.byNs.get(namespace);
    if (!ns) return [];
    let candidates = ns.all;
    for (const k in selector) {
      const list = ns.byLabel.get(`${k}=${selector[k]}`);
      if (!list) return [];
      if (list.length < candidates.length) candidates = list;
    }
    return candidates.filter((p) => matches(selector, p.meta.labels));
  }
}

/** Element-wise identity: the store keeps an unchanged object's identity across reads. */
function sameElements(a: readonly unknown[] | undefined, b: readonly unknown[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * What `buildModel` keeps from one build to the next (the control plane holds one): the selector index and the
 * workloads and policies while the pods and policies are the same objects, and each Service's model while its
 * `sources` are. A one-Service change then builds one Service's model; the rest are a few map hits each.
 */
export class ModelCache {
  private pods: PodObject[] | undefined;
  private selectable: SelectorIndex | undefined;
  private policyObjects: PolicyObject[] | undefined;
  private workloads: Pick<MeshModel, 'workloadsByNode' | 'policies'> | undefined;
  private services = new Map<string, ServiceModel>();
  /** Service models reused in the last build, for tests. */
  reused = 0;

  selectorIndex(pods: PodObject[]): SelectorIndex {
    if (!this.selectable || !sameElements(this.pods, pods)) {
      this.selectable = new SelectorIndex(pods.filter(isServing));
      this.pods = pods;
      this.workloads = undefined;
    }
    return this.selectable;
  }

  workloadsOf(pods: PodObject[], policyObjects: PolicyObject[], build: () => Pick<MeshModel, 'workloadsByNode' | 'policies'>): Pick<MeshModel, 'workloadsByNode' | 'policies'> {
    this.selectorIndex(pods);
    if (!this.workloads || !sameElements(this.policyObjects, policyObjects)) {
      this.workloads = build();
      this.policyObjects = policyObjects;
    }
    return this.workloads;
  }

  /** The model built last time for `key` from the same sources, or `build()`'s; call `sweep` after the build. */
  service(key: string, sources: readonly unknown[], build: () => ServiceModel, next: Map<string, ServiceModel>): ServiceModel {
    const cur = this.services.get(key);
    const m = cur && sameElements(cur.sources, sources) ? cur : build();
    if (m === cur) this.reused++;
    next.set(key, m);
    return m;
  }

  /** Ends a build: keeps only the Services it saw. */
  replaceServices(next: Map<string, ServiceModel>): void {
    this.services = next;
  }
}

/** The pod's port for `targetPort`: the number itself, or the named container port (undefined: pod lacks it). */
export function resolveTargetPort(pod: PodObject, sp: ServicePort): number | undefined {
  if (typeof sp.targetPort === 'number') return sp.targetPort;
  for (const c of pod.containers) {
    for (const p of c.ports) if (p.name === sp.targetPort && p.protocol === sp.protocol) return p.containerPort;
  }
  return undefined;
}

/** A pod backs services once it has an IP (so it is scheduled) and is ready. */
export function isServing(pod: PodObject): boolean {
  return pod.podIP !== undefined && pod.ready;
}

/** Succeeded or Failed: its containers are gone for good and Kubernetes may give its IP to another pod. */
function isTerminal(pod: PodObject): boolean {
  return pod.phase === 'Succeeded' || pod.phase === 'Failed';
}

/**
 * `pods` oldest first. Groups the pods that claim each IP (host-network pods share their node's, and terminal pods
 * have given theirs up, so neither claims); of two or more, the first not being deleted holds it, else the oldest.
 * Returns the pods without the refused ones (the model's pods then never share an IP) and the conflicts.
 */
function claimPodIps(pods: PodObject[]): { pods: PodObject[]; conflicts: PodIpConflict[] } {
  const first = new Map<string, PodObject>();
  /** Only the IPs two or more pods claim, with all their claimants (the common case allocates no list). */
  let contested: Map<string, PodObject[]> | undefined;
  for (const p of pods) {
    if (p.podIP === undefined || p.hostNetwork || isTerminal(p)) continue;
    const key = canonicalIp(p.podIP);
    const had = first.get(key);
    if (had === undefined) {
      first.set(key, p);
      continue;
    }
    contested ??= new Map();
    const list = contested.get(key);
    if (list) list.push(p);
    else contested.set(key, [had, p]);
  }
  if (!contested) return { pods, conflicts: [] };
  const refused = new Set<PodObject>();
  const conflicts: PodIpConflict[] = [];
  const nsName = (p: PodObject): string => `${p.meta.namespace}/${p.meta.name}`;
  for (const [ip, list] of contested) {
    const holder = list.find((p) => !p.deleting) ?? list[0]!;
    const holderAt = list.indexOf(holder);
    list.forEach((p, i) => {
      if (p === holder) return;
      refused.add(p);
      conflicts.push({ ip, kept: nsName(holder), refused: nsName(p), reason: i < holderAt ? 'refused-deleting' : 'older' });
    });
  }
  return { pods: pods.filter((p) => !refused.has(p)), conflicts };
}

/**
 * `services` and `allPods` must come oldest first (as ObjectStore lists them): of two Services claiming one
 * clusterIP:port the first keeps it, and of two pods claiming one IP the first not being deleted (claimPodIps).
 */
export function buildModel(
  services: ServiceObject[],
  allPods: PodObject[],
  vips: VipAllocator,
  domain?: string,
  policyObjects: PolicyObject[] = [],
  cache = new ModelCache(),
): MeshModel {
  const { pods: holding, conflicts: podIpConflicts } = claimPodIps(allPods);
  const requested = new Map<string, string | undefined>();
  for (const s of services) {
    if (s.clusterIP !== 'None') requested.set(`${s.meta.namespace}/${s.meta.name}`, s.clusterIP);
  }
  const assigned = vips.assign(requested);
  const vipConflicts = contestedVips(services, assigned);
  for (const c of vipConflicts) assigned.delete(c.refused);
  const selectable = cache.selectorIndex(holding);
  cache.reused = 0;
  const seen = new Map<string, ServiceModel>();
  const out: ServiceModel[] = [];
  const sorted = services.map((s) => ({ key: `${s.meta.namespace}/${s.meta.name}`, s })).sort((a, b) => byName(a.key, b.key));
  for (const { key, s } of sorted) {
    const vip = assigned.get(key);
    const backing = s.selector ? selectable.select(s.meta.namespace, s.selector) : [];
    backing.sort((a, b) => byName(a.meta.name, b.meta.name));
    out.push(cache.service(key, [s, vip, domain, ...backing], () => serviceModel(s, vip, backing, domain), seen));
  }
  cache.replaceServices(seen);
  const { workloadsByNode, policies } = cache.workloadsOf(holding, policyObjects, () => workloadsAndPolicies(holding, policyObjects));
  return { services: out, workloadsByNode, policies, vipConflicts, podIpConflicts };
}

/** One Service's model: a pure function of its `sources` (the Service, its VIP, the domain, its backing pods). */
function serviceModel(s: ServiceObject, vip: string | undefined, backing: PodObject[], domain: string | undefined): ServiceModel {
  const host = serviceHost(s.meta.name, s.meta.namespace, domain);
  const ports: ServicePortModel[] = s.ports
    .filter((p) => p.protocol === 'TCP')
    .map((sp) => {
      const endpoints: EndpointModel[] = [];
      for (const pod of backing) {
        const port = resolveTargetPort(pod, sp);
        if (port === undefined) continue;
        endpoints.push({
          address: pod.podIP!,
          port,
          pod: pod.meta.name,
          namespace: pod.meta.namespace,
          serviceAccount: pod.serviceAccount,
          node: pod.nodeName ?? '',
          inMesh: pod.inMesh,
          app: pod.meta.labels.app,
          version: pod.meta.labels.version,
        });
      }
      return {
        port: sp,
        protocol: portProtocol(sp),
        clusterName: outboundClusterName(host, sp.port),
        listenerName: serviceListenerName(host, sp.port),
        vipListenerName: vip ? vipListenerName(vip, sp.port) : undefined,
        endpoints,
      };
    });
  return { name: s.meta.name, namespace: s.meta.namespace, host, vip, ports, ...(s.retryBudget ? { retryBudget: s.retryBudget } : {}), sources: [s, vip, domain, ...backing] };
}

/** In-mesh pods with an IP per node, and each one's security policy. */
function workloadsAndPolicies(pods: PodObject[], policyObjects: PolicyObject[]): Pick<MeshModel, 'workloadsByNode' | 'policies'> {
  const workloadsByNode = new Map<string, PodObject[]>();
  for (const p of pods) {
    if (!p.inMesh || p.podIP === undefined || p.nodeName === undefined || isTerminal(p)) continue;
    const list = workloadsByNode.get(p.nodeName) ?? [];
    list.push(p);
    workloadsByNode.set(p.nodeName, list);
  }
  for (const list of workloadsByNode.values()) list.sort((a, b) => byName(a.meta.name, b.meta.name));
  const index = new PolicyIndex(policyObjects);
  const policies = new Map<string, WorkloadPolicy>();
  for (const list of workloadsByNode.values()) {
    for (const p of list) policies.set(`${p.meta.namespace}/${p.meta.name}`, index.workloadPolicy(p));
  }
  return { workloadsByNode, policies };
}

/** Walks the Services oldest first: each claims its VIP's ports unless an earlier one has any of them. */
function contestedVips(services: ServiceObject[], assigned: Map<string, string>): VipConflict[] {
  const owners = new Map<string, string>();
  const conflicts: VipConflict[] = [];
  for (const s of services) {
    const key = `${s.meta.namespace}/${s.meta.name}`;
    const vip = assigned.get(key);
    if (vip === undefined) continue;
    const claims = [...new Set(s.ports.map((p) => `${p.protocol}/${p.port}`))];
    const clashes = new Map<string, string[]>();
    for (const c of claims) {
      const owner = owners.get(`${vip} ${c}`);
      if (owner !== undefined && owner !== key) clashes.set(owner, [...(clashes.get(owner) ?? []), c]);
    }
    if (clashes.size === 0) {
      for (const c of claims) owners.set(`${vip} ${c}`, key);
      continue;
    }
    for (const [kept, ports] of clashes) conflicts.push({ vip, ports, kept, refused: key });
  }
  return conflicts;
}
