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

interface ClusterState {
  info: ClusterInfo;
  endpoints: EndpointInfo[];
  /** Next round-robin position. */
  next: number;
}

export interface Resolved {
  cluster: ClusterInfo;
  /** Endpoints to try, in order: the LB's pick first, then failover candidates. */
  candidates: EndpointInfo[];
}

/** How many endpoints one connection may try before the client sees an error. */
export const MAX_CONNECT_ATTEMPTS = 3;

/**
 * Written by the xDS client (whole resource sets per type, already validated), read by the proxy per
 * connection. Lookups are map hits; no allocation beyond the candidate list.
 */
export class ServiceStore {
  private vips = new Map<string, VipInfo>();
  private readonly clusters = new Map<string, ClusterState>();
  private endpoints = new Map<string, EndpointInfo[]>();
  /** Pod IP -> endpoint metadata, from every cluster's endpoints (names pods on other nodes). */
  private byIp = new Map<string, EndpointInfo>();
  /** `podIP:port` -> the Service port that selects it: its protocol (a pod IP destination takes its Service's) and host. */
  private portIndex = new Map<string, { protocol: PortProtocol; host: string }>();

  private static key(ip: string, port: number): string {
    return `${ip}:${port}`;
  }

  replaceVips(vips: VipInfo[]): void {
    const next = new Map<string, VipInfo>();
    for (const v of vips) next.set(ServiceStore.key(v.vip, v.port), v);
    this.vips = next;
  }

  replaceClusters(clusters: ClusterInfo[]): void {
    const keep = new Set(clusters.map((c) => c.name));
    for (const name of [...this.clusters.keys()]) if (!keep.has(name)) this.clusters.delete(name);
    for (const c of clusters) {
      const cur = this.clusters.get(c.name);
      if (cur) cur.info = c;
      else this.clusters.set(c.name, { info: c, endpoints: this.endpoints.get(c.name) ?? [], next: 0 });
    }
    this.indexPortProtocols();
  }

  /** Endpoints per cluster name; clusters not listed keep no endpoints. */
  replaceEndpoints(byCluster: Map<string, EndpointInfo[]>): void {
    this.endpoints = byCluster;
    for (const [name, st] of this.clusters) st.endpoints = byCluster.get(name) ?? [];
    const byIp = new Map<string, EndpointInfo>();
    for (const eps of byCluster.values()) for (const e of eps) if (e.pod) byIp.set(e.ip, e);
    this.byIp = byIp;
    this.indexPortProtocols();
  }

  /**
   * Two Services selecting the same pod port with different protocols: TCP wins over HTTP, declared over
   * detected, so a port is never parsed as HTTP when any Service says it is not.
   */
  private indexPortProtocols(): void {
    const rank: Record<PortProtocol, number> = { tcp: 4, grpc: 3, http2: 2, http: 1, detect: 0 };
    const next = new Map<string, { protocol: PortProtocol; host: string }>();
    for (const st of this.clusters.values()) {
      for (const e of st.endpoints) {
        const key = ServiceStore.key(e.ip, e.port);
        const cur = next.get(key);
        if (cur === undefined || rank[st.info.protocol] > rank[cur.protocol]) next.set(key, { protocol: st.info.protocol, host: st.info.host });
      }
    }
    this.portIndex = next;
  }

  /** The protocol of a pod's port from the Services that select it; undefined when none does. */
  portProtocol(ip: string, port: number): PortProtocol | undefined {
    return this.portIndex.get(ServiceStore.key(ip, port))?.protocol;
  }

  /** The host of a Service that selects the pod's port (the one whose protocol counts), for telemetry. */
  portService(ip: string, port: number): string | undefined {
    return this.portIndex.get(ServiceStore.key(ip, port))?.host;
  }

  /** The Service VIP:port, with its protocol and route tables; undefined for anything else. */
  servicePort(ip: string, port: number): ServicePort | undefined {
    return this.vips.get(ServiceStore.key(ip, port));
  }

  cluster(name: string): ClusterInfo | undefined {
    return this.clusters.get(name)?.info;
  }

  /** A cluster's current endpoints (the array is replaced, never mutated, on updates: safe to keep per request). */
  endpointsOf(name: string): readonly EndpointInfo[] {
    return this.clusters.get(name)?.endpoints ?? [];
  }

  /** Workload metadata of a pod IP known from any service's endpoints. */
  findWorkload(ip: string): EndpointInfo | undefined {
    return this.byIp.get(ip);
  }

  /** The service behind VIP:port, or null for destinations that are not services (passthrough). */
  resolve(ip: string, port: number): Resolved | null {
    const vip = this.vips.get(ServiceStore.key(ip, port));
    if (!vip) return null;
    const st = this.clusters.get(vip.cluster);
    if (!st) return null;
    const eps = st.endpoints;
    const n = eps.length;
    const candidates: EndpointInfo[] = [];
    if (n > 0) {
      const start = st.next % n;
      st.next = (start + 1) % n;
      for (let i = 0; i < Math.min(n, MAX_CONNECT_ATTEMPTS); i++) candidates.push(eps[(start + i) % n]!);
    }
    return { cluster: st.info, candidates };
  }

  isVip(ip: string, port: number): boolean {
    return this.vips.has(ServiceStore.key(ip, port));
  }

  snapshot(): { vips: VipInfo[]; clusters: (ClusterInfo & { endpoints: EndpointInfo[] })[] } {
    return {
      vips: [...this.vips.values()],
      clusters: [...this.clusters.values()].map((c) => ({ ...c.info, endpoints: c.endpoints })),
    };
  }
}
