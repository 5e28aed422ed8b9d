// The agent's view of its local workloads (enrolled pods): what the proxy reads to label and route.

export interface Workload {
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  ips: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Istio's workload label; pods have no owner here, so the pod name unless annotated. */
  workloadName: string;
}

export const UNKNOWN = 'unknown';

export function workloadName(name: string, annotations: Record<string, string>): string {
  return annotations['nodemesh.io/workload'] ?? name;
}

/** Local workloads indexed by uid and by IP. Written by enrollment, read by the proxy. */
export class WorkloadStore {
  private readonly byUid = new Map<string, Workload>();
  private readonly byIp = new Map<string, Workload>();

  upsert(w: Workload): void {
    this.remove(w.uid);
    this.byUid.set(w.uid, w);
    for (const ip of w.ips) this.byIp.set(ip, w);
  }

  remove(uid: string): Workload | undefined {
    const w = this.byUid.get(uid);
    if (!w) return undefined;
    this.byUid.delete(uid);
    for (const ip of w.ips) if (this.byIp.get(ip) === w) this.byIp.delete(ip);
    return w;
  }

  get(uid: string): Workload | undefined {
    return this.byUid.get(uid);
  }

  findByIp(ip: string): Workload | undefined {
    return this.byIp.get(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  }

  list(): Workload[] {
    return [...this.byUid.values()];
  }

  get size(): number {
    return this.byUid.size;
  }
}
