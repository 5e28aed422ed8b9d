// Services as the proxy sees them: VIP:port -> cluster -> endpoints (with workload metadata), plus load balancing.

export interface EndpointInfo {
  ip: string;
  port: number;
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
}

export interface VipInfo {
  vip: string;
  port: number;
  cluster: string;
}

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
  }

  /** Endpoints per cluster name; clusters not listed keep no endpoints. */
  replaceEndpoints(byCluster: Map<string, EndpointInfo[]>): void {
    this.endpoints = byCluster;
    for (const [name, st] of this.clusters) st.endpoints = byCluster.get(name) ?? [];
    const byIp = new Map<string, EndpointInfo>();
    for (const eps of byCluster.values()) for (const e of eps) if (e.pod) byIp.set(e.ip, e);
    this.byIp = byIp;
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
