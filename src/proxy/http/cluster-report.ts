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
