// Services as the proxy sees them: VIP:port -> cluster -> endpoints (with workload metadata), plus load balancing.

import type { PortProtocol, ServicePort } from './routes';

export interface EndpointInfo {
  ip: string;
  port: number;
  /** Where the pod runs, for locality-aware balancing (`topology.kubernetes.io/zone` of its node). */
  zone?: string;
  /** The pod's `app` and `version` labels, for request metrics. */
  app?: string;
  version?: string;
  /** Workload metadata carried by the control plane (absent for endpoints it knows nothing about). */
  pod?: string;
  namespace?: string;
  serviceAccount?: string;
  node?: string;
  inMesh: boolean;
}

export type LbPolicy = 'round_robin';

export interface ClusterInfo {
  name: string;
  /** Service FQDN this cluster serves, e.g. echo.default.svc.cluster.local */
  host: string;
  lbPolicy: LbPolicy;
  connectTimeoutMs: number;
  /** What the endpoints speak (the Service port's protocol): how L7 talks to them upstream. */
  protocol: PortProtocol;
  /** L7 traffic policy (Istio DestinationRule, delivered as the Envoy cluster's fields); absent: the defaults. */
  policy?: ClusterPolicy;
}

/** How requests are spread over a cluster's endpoints (DestinationRule trafficPolicy.loadBalancer). */
export type LoadBalancing =
  | { kind: 'least_request' | 'round_robin' | 'random' | 'peak_ewma' }
  /** Consistent hashing on the route's hash policy (RoutePolicy.hash); ring hash or Maglev. */
  | { kind: 'ring_hash'; minRingSize?: number }
  | { kind: 'maglev'; tableSize?: number };

/**
 * Per-cluster traffic policy. Every limit is optional: unset means unlimited, as in Istio. Breaker and
 * outlier state lives in the source agent, per cluster and endpoint.
 */
export interface ClusterPolicy {
  lb?: LoadBalancing;
  /** Prefer endpoints on the client's node, then its zone, failing over when those have none healthy. */
  locality?: { enabled: boolean };
  /** DestinationRule connectionPool: overflow answers 503 with response flag UO. */
  connectionPool?: {
    maxConnections?: number;
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeoutMs?: number;
  };
  /** DestinationRule outlierDetection. */
  outlierDetection?: {
    consecutive5xxErrors?: number;
    consecutiveGatewayErrors?: number;
    intervalMs: number;
    baseEjectionMs: number;
    maxEjectionPercent: number;
    minHealthPercent?: number;
  };
  /** Envoy's concurrency budget for retries (DestinationRule trafficPolicy.retryBudget). */
  retryBudgetConcurrency?: { percent: number; minRetryConcurrency: number };
  /** Linkerd's rate budget for retries (per Service): retries may add `ratio` to the request rate, at least `minPerSecond`, over `ttlMs`. */
  retryBudgetRate?: { ratio: number; minPerSecond: number; ttlMs: number };
}

/** A Service VIP:port: its cluster, its protocol and (for HTTP) its route tables. */
export type VipInfo = ServicePort;

export interface Resolved {
  cluster: ClusterInfo;
  /** Endpoints to try, in order: the LB's pick first, then failover candidates. */
  candidates: EndpointInfo[];
}

/** How many endpoints one connection may try before the client sees an error. */
export const MAX_CONNECT_ATTEMPTS = 3;

/**
 * The endpoints naming one pod IP, each with its cluster: `[cluster, endpoint, cluster, endpoint, …]`, exactly as
 * long as it needs to be. Flat and exact because there is one per pod of the cluster (20,000 at 20,000 pods): pairs as
 * objects in arrays grown by push cost ~6 MB there.
 */
type EndpointRefs = readonly (string | EndpointInfo)[];

/** `refs` with one more pair, or without `cluster`'s pairs (a new array either way: exact size). */
function withRef(refs: EndpointRefs | undefined, cluster: string, e: EndpointInfo): EndpointRefs {
  const n = refs?.length ?? 0;
  const out = new Array<string | EndpointInfo>(n + 2);
  for (let i = 0; i < n; i++) out[i] = refs![i]!;
  out[n] = cluster;
  out[n + 1] = e;
  return out;
}

function withoutCluster(refs: EndpointRefs, cluster: string): EndpointRefs {
  let keep = 0;
  for (let i = 0; i < refs.length; i += 2) if (refs[i] !== cluster) keep += 2;
  const out = new Array<string | EndpointInfo>(keep);
  let j = 0;
  for (let i = 0; i < refs.length; i += 2) {
    if (refs[i] === cluster) continue;
    out[j++] = refs[i]!;
    out[j++] = refs[i + 1]!;
  }
  return out;
}

/**
 * `e` (being indexed) takes `had`'s strings where they are equal: `had` is indexed under the same IP, so its `ip`
 * is equal; its pod name usually is too. Equal values only: nothing any reader sees changes.
 */
function shareStrings(e: EndpointInfo, had: EndpointInfo): void {
  // A frozen endpoint (none the decoders make) keeps its own copies.
  if (e.ip !== had.ip || Object.isFrozen(e)) return;
  e.ip = had.ip;
  if (e.pod !== undefined && e.pod === had.pod) e.pod = had.pod;
}

/** Two Services selecting the same pod port with different protocols: TCP wins over HTTP, declared over detected. */
const PROTOCOL_RANK: Record<PortProtocol, number> = { tcp: 4, grpc: 3, http2: 2, http: 1, detect: 0 };

/** What a cluster without endpoints reads: one shared, frozen empty list. */
const NO_ENDPOINTS: readonly EndpointInfo[] = Object.freeze([]);

/**
 * A VIP:port as a Map key: for IPv4, the address and port packed into one number (ip * 65536 + port, exact in a
 * double), which costs a heap number where `ip:port` strings cost a string each (11,000 VIPs at 10,000 Services);
 * anything else (IPv6) keeps the string. Lookups parse the address without allocating a string.
 */
function vipKey(ip: string, port: number): number | string {
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return `${ip}:${port}`;
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3 && !(digits === 1 && octet === 0)) {
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return `${ip}:${port}`;
    } else return `${ip}:${port}`;
  }
  if (dots !== 3 || digits === 0) return `${ip}:${port}`;
  return (addr * 256 + octet) * 65536 + port;
}

/**
 * Written by the xDS client (whole resource sets per type, or what changed in one, already validated), read by
 * the proxy per connection. Lookups are map hits; no allocation beyond the candidate list. An update costs what
 * it changes: nothing is re-indexed over every cluster.
 *
 * Sized for 10,000 Services and 20,000 pods on one agent: a cluster is its ClusterInfo (no wrapper), the
 * round-robin positions exist only for clusters that connections went to, and an endpoint indexed for a pod IP
 * that is already indexed takes the indexed endpoint's `ip` and `pod` strings (equal values, one copy: each pod is
 * in the workload directory and in its Services' clusters, and every decode makes its own copies); endpoint lists
 * and VIPs take their cluster's name from its ClusterInfo likewise.
 */
export class ServiceStore {
  private vips = new Map<number | string, VipInfo>();
  private readonly clusters = new Map<string, ClusterInfo>();
  private endpoints = new Map<string, readonly EndpointInfo[]>();
  /** Next round-robin position per cluster, set by `resolve`. */
  private readonly next = new Map<string, number>();
  /** Pod IP -> the endpoints naming it, in every cluster (names pods on other nodes). */
  private refs = new Map<string, EndpointRefs>();

  replaceVips(vips: VipInfo[]): void {
    const next = new Map<number | string, VipInfo>();
    for (const v of vips) next.set(vipKey(v.vip, v.port), this.sharedName(v));
    this.vips = next;
  }

  /** Some VIP listeners changed: `removed` go, `upserted` are set (a changed one is in both). */
  updateVips(removed: VipInfo[], upserted: VipInfo[]): void {
    for (const v of removed) this.vips.delete(vipKey(v.vip, v.port));
    for (const v of upserted) this.vips.set(vipKey(v.vip, v.port), this.sharedName(v));
  }

  /**
   * The known cluster's own copy of `name` (equal value). A cluster's name comes in its Cluster, its
   * ClusterLoadAssignment and its VIP listener, each decoded into its own string (11,000 of each at 10,000
   * Services); the store keeps one.
   */
  private clusterName(name: string): string {
    return this.clusters.get(name)?.name ?? name;
  }

  /** `v` with its cluster's name shared (as for endpoints, equal values: nothing any reader sees changes). */
  private sharedName(v: VipInfo): VipInfo {
    if (!Object.isFrozen(v)) v.cluster = this.clusterName(v.cluster);
    return v;
  }

  replaceClusters(clusters: ClusterInfo[]): void {
    const keep = new Set(clusters.map((c) => c.name));
    this.updateClusters(
      [...this.clusters.keys()].filter((name) => !keep.has(name)),
      clusters,
    );
  }

  /** Some clusters changed: `removed` (names) go, `upserted` are set (a changed cluster keeps its round-robin position). */
  updateClusters(removed: string[], upserted: ClusterInfo[]): void {
    for (const name of removed) {
      this.clusters.delete(name);
      this.next.delete(name);
    }
    for (const c of upserted) this.clusters.set(c.name, c);
  }

  /** Endpoints per cluster name; clusters not listed keep no endpoints. */
  replaceEndpoints(byCluster: Map<string, EndpointInfo[]>): void {
    this.endpoints = new Map();
    this.refs = new Map();
    for (const [name, eps] of byCluster) {
      const key = this.clusterName(name);
      this.endpoints.set(key, eps);
      this.index(key, eps);
    }
  }

  /** Some clusters' endpoints changed: each listed cluster's endpoints are replaced (undefined: it has none now). */
  updateEndpoints(changed: Map<string, EndpointInfo[] | undefined>): void {
    for (const [name, eps] of changed) {
      const old = this.endpoints.get(name);
      if (old) this.unindex(name, old);
      if (eps) {
        const key = this.clusterName(name);
        this.endpoints.set(key, eps);
        this.index(key, eps);
      } else this.endpoints.delete(name);
    }
  }

  private index(cluster: string, eps: readonly EndpointInfo[]): void {
    for (const e of eps) {
      const refs = this.refs.get(e.ip);
      if (refs) shareStrings(e, refs[1] as EndpointInfo);
      this.refs.set(e.ip, withRef(refs, cluster, e));
    }
  }

  private unindex(cluster: string, eps: readonly EndpointInfo[]): void {
    for (const e of eps) {
      const list = this.refs.get(e.ip);
      if (!list) continue;
      const rest = withoutCluster(list, cluster);
      if (rest.length > 0) this.refs.set(e.ip, rest);
      else this.refs.delete(e.ip);
    }
  }

  /**
   * The cluster whose Service port selects the pod's port: of several, the one whose protocol ranks first
   * (PROTOCOL_RANK), so a port is never parsed as HTTP when any Service says it is not.
   */
  private portOwner(ip: string, port: number): ClusterInfo | undefined {
    let best: ClusterInfo | undefined;
    const refs = this.refs.get(ip);
    if (!refs) return undefined;
    for (let i = 0; i < refs.length; i += 2) {
      if ((refs[i + 1] as EndpointInfo).port !== port) continue;
      const info = this.clusters.get(refs[i] as string);
      if (info && (best === undefined || PROTOCOL_RANK[info.protocol] > PROTOCOL_RANK[best.protocol])) best = info;
    }
    return best;
  }

  /** The protocol of a pod's port from the Services that select it; undefined when none does. */
  portProtocol(ip: string, port: number): PortProtocol | undefined {
    return this.portOwner(ip, port)?.protocol;
  }

  /** The host of a Service that selects the pod's port (the one whose protocol counts), for telemetry. */
  portService(ip: string, port: number): string | undefined {
    return this.portOwner(ip, port)?.host;
  }

  /** The Service VIP:port, with its protocol and route tables; undefined for anything else. */
  servicePort(ip: string, port: number): ServicePort | undefined {
    return this.vips.get(vipKey(ip, port));
  }

  cluster(name: string): ClusterInfo | undefined {
    return this.clusters.get(name);
  }

  /**
   * A known cluster's current endpoints (the array is replaced, never mutated, on updates: safe to keep per
   * request); none for a cluster CDS does not list, whatever EDS says.
   */
  endpointsOf(name: string): readonly EndpointInfo[] {
    return this.clusters.has(name) ? (this.endpoints.get(name) ?? NO_ENDPOINTS) : NO_ENDPOINTS;
  }

  /** Workload metadata of a pod IP known from any service's endpoints (the latest applied, when several). */
  findWorkload(ip: string): EndpointInfo | undefined {
    const list = this.refs.get(ip);
    if (!list) return undefined;
    for (let i = list.length - 1; i > 0; i -= 2) if ((list[i] as EndpointInfo).pod) return list[i] as EndpointInfo;
    return undefined;
  }

  /** The service behind VIP:port, or null for destinations that are not services (passthrough). */
  resolve(ip: string, port: number): Resolved | null {
    const vip = this.vips.get(vipKey(ip, port));
    if (!vip) return null;
    const info = this.clusters.get(vip.cluster);
    if (!info) return null;
    const eps = this.endpoints.get(vip.cluster) ?? NO_ENDPOINTS;
    const n = eps.length;
    const candidates: EndpointInfo[] = [];
    if (n > 0) {
      const start = (this.next.get(vip.cluster) ?? 0) % n;
      this.next.set(vip.cluster, (start + 1) % n);
      for (let i = 0; i < Math.min(n, MAX_CONNECT_ATTEMPTS); i++) candidates.push(eps[(start + i) % n]!);
    }
    return { cluster: info, candidates };
  }

  isVip(ip: string, port: number): boolean {
    return this.vips.has(vipKey(ip, port));
  }

  snapshot(): { vips: VipInfo[]; clusters: (ClusterInfo & { endpoints: readonly EndpointInfo[] })[] } {
    return {
      vips: [...this.vips.values()],
      clusters: [...this.clusters.values()].map((c) => ({ ...c, endpoints: this.endpointsOf(c.name) })),
    };
  }
}
