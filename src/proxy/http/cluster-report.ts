// What /config_dump shows of one event loop's per-cluster state (cluster-state.ts): requests and retries in
// flight, and each endpoint's outlier state (healthy, or ejected until when, and how many times), so an
// operator can see why an endpoint gets no requests.

import type { ClusterStates } from './cluster-state';

export interface EndpointReport {
  endpoint: string;
  state: 'healthy' | 'ejected';
  /** ISO time the ejection ends; only while ejected. */
  ejectedUntil?: string;
  /** Ejections counted against the endpoint (each multiplies baseEjectionTime; decays while healthy). */
  ejections: number;
  active: number;
  consecutive5xx: number;
  consecutiveGateway: number;
  ewmaMs: number;
}

export interface ClusterReport {
  cluster: string;
  /** 0: the main thread, else the data-plane worker's index. */
  thread: number;
  active: number;
  pending: number;
  activeRetries: number;
  endpoints: EndpointReport[];
}

export function clusterReport(states: ClusterStates, thread: number, now = Date.now()): ClusterReport[] {
  return [...states.all()].map((cs) => ({
    cluster: cs.name,
    thread,
    active: cs.active,
    pending: cs.pending,
    activeRetries: cs.activeRetries,
    endpoints: [...cs.endpoints.values()].map((e) => ({
      endpoint: e.key,
      state: e.ejectedUntil > now ? 'ejected' : 'healthy',
      ...(e.ejectedUntil > now ? { ejectedUntil: new Date(e.ejectedUntil).toISOString() } : {}),
      ejections: e.ejections,
      active: e.active,
      consecutive5xx: e.consecutive5xx,
      consecutiveGateway: e.consecutiveGateway,
      ewmaMs: Math.round(e.ewmaMs * 10) / 10,
    })),
  }));
}

/** One endpoint of a cluster as the control plane's dashboard sees it, over every thread of an agent. */
export interface EndpointTotals {
  active: number;
  /** Ejected on any thread, until the latest of them (ms since the epoch; 0 when healthy everywhere). */
  ejectedUntilMs: number;
  ejections: number;
  consecutive5xx: number;
  ewmaMs: number;
}

/**
 * Folds the per-thread reports of `clusterReport` into one figure per cluster and endpoint (`IP:port`): requests
 * in flight summed; ejection, error streaks and latency as the worst thread sees them (each thread ejects on
 * what it saw; an endpoint ejected anywhere is getting fewer requests from this agent).
 */
export function endpointTotals(reports: ClusterReport[], now = Date.now()): Map<string, Map<string, EndpointTotals>> {
  const out = new Map<string, Map<string, EndpointTotals>>();
  for (const r of reports) {
    let eps = out.get(r.cluster);
    if (eps === undefined) out.set(r.cluster, (eps = new Map()));
    for (const e of r.endpoints) {
      const until = e.state === 'ejected' && e.ejectedUntil !== undefined ? Date.parse(e.ejectedUntil) : 0;
      const t = eps.get(e.endpoint);
      if (t === undefined) {
        eps.set(e.endpoint, { active: e.active, ejectedUntilMs: until > now ? until : 0, ejections: e.ejections, consecutive5xx: e.consecutive5xx, ewmaMs: e.ewmaMs });
        continue;
      }
      t.active += e.active;
      if (until > now) t.ejectedUntilMs = Math.max(t.ejectedUntilMs, until);
      t.ejections = Math.max(t.ejections, e.ejections);
      t.consecutive5xx = Math.max(t.consecutive5xx, e.consecutive5xx);
      t.ewmaMs = Math.max(t.ewmaMs, e.ewmaMs);
    }
  }
  return out;
}
