// What the source agent keeps per upstream cluster and endpoint across requests: requests in flight (for
// least-request balancing and the breakers), latency (peak EWMA), consecutive errors and ejections
// (outlier detection), and the windows of the retry budgets. Kept by cluster name and endpoint address, so
// a config push that replaces a cluster's endpoint list keeps the state of endpoints that stay.

import type { ClusterPolicy, EndpointInfo } from '../../state/services';

export interface EndpointState {
  readonly key: string;
  /** Requests sent to it and not yet answered. */
  active: number;
  /** Peak EWMA of response latency (ms); starts at the cluster's default so new endpoints get traffic. */
  ewmaMs: number;
  lastUpdate: number;
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejected until this time (ms since epoch); 0 when not ejected. */
  ejectedUntil: number;
  ejections: number;
}

/** Per-second counts over a sliding window: the Linkerd-style rate budget's requests and retries. */
export class RateWindow {
  private readonly buckets: number[];
  private readonly stamps: number[];

  constructor(private readonly seconds: number) {
    this.buckets = new Array(seconds).fill(0);
    this.stamps = new Array(seconds).fill(-1);
  }

  add(nowMs: number, n = 1): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.seconds;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.buckets[i] = 0;
    }
    this.buckets[i]! += n;
  }

  sum(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    let s = 0;
    for (let i = 0; i < this.seconds; i++) if (this.stamps[i]! > sec - this.seconds) s += this.buckets[i]!;
    return s;
  }
}

export class ClusterState {
  /** Requests in flight to the cluster (all attempts), for http2MaxRequests and the concurrency budget. */
  active = 0;
  /** Requests waiting for an upstream connection (HTTP/1.1), for http1MaxPendingRequests. */
  pending = 0;
  /** Retries in flight, for maxRetries and the concurrency budget. */
  activeRetries = 0;
  readonly endpoints = new Map<string, EndpointState>();
  requests: RateWindow;
  retries: RateWindow;
  private windowS: number;

  constructor(
    readonly name: string,
    public policy: ClusterPolicy | undefined,
  ) {
    this.windowS = Math.max(1, Math.round((policy?.retryBudgetRate?.ttlMs ?? 10_000) / 1000));
    this.requests = new RateWindow(this.windowS);
    this.retries = new RateWindow(this.windowS);
  }

  /** A new policy from a config push: the counters stay; a new budget window size starts them over. */
  update(policy: ClusterPolicy | undefined): void {
    this.policy = policy;
    const w = Math.max(1, Math.round((policy?.retryBudgetRate?.ttlMs ?? 10_000) / 1000));
    if (w !== this.windowS) {
      this.windowS = w;
      this.requests = new RateWindow(w);
      this.retries = new RateWindow(w);
    }
  }

  endpoint(ep: EndpointInfo): EndpointState {
    const key = `${ep.ip}:${ep.port}`;
    let s = this.endpoints.get(key);
    if (!s) {
      s = { key, active: 0, ewmaMs: 0, lastUpdate: 0, consecutive5xx: 0, consecutiveGateway: 0, ejectedUntil: 0, ejections: 0 };
      this.endpoints.set(key, s);
    }
    return s;
  }

  /** Forgets endpoints no longer in the cluster (called after a config push). */
  retain(current: readonly EndpointInfo[]): void {
    if (this.endpoints.size <= current.length) return;
    const keep = new Set(current.map((e) => `${e.ip}:${e.port}`));
    for (const k of this.endpoints.keys()) if (!keep.has(k)) this.endpoints.delete(k);
  }
}

/** Every cluster's state in one event loop, created on first use. */
export class ClusterStates {
  private readonly byName = new Map<string, ClusterState>();

  get(name: string, policy: ClusterPolicy | undefined): ClusterState {
    let s = this.byName.get(name);
    if (!s) {
      s = new ClusterState(name, policy);
      this.byName.set(name, s);
    } else if (s.policy !== policy) {
      s.update(policy);
    }
    return s;
  }

  /** Clusters that left the config lose their state. */
  retainClusters(names: Set<string>): void {
    for (const k of this.byName.keys()) if (!names.has(k)) this.byName.delete(k);
  }

  peek(name: string): ClusterState | undefined {
    return this.byName.get(name);
  }

  all(): IterableIterator<ClusterState> {
    return this.byName.values();
  }
}
