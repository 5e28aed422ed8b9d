// What the control plane knows from the agents' telemetry streams: each agent's latest report, and the last
// minutes of its cumulative request and TCP series (one snapshot per report), so rates, success rates and
// latency percentiles can be computed over any window up to the history kept, with no Prometheus. Bounded:
// agents, series per agent, snapshots per agent.

import { DURATION_BUCKETS } from '../../telemetry/request-metrics';
import type { AgentReport } from '../../telemetry/mesh-report/telemetry-proto';

export interface DirectoryOptions {
  /** History kept per agent. Default 10 minutes. */
  historyMs?: number;
  /** Series kept per agent per report; more are dropped (counted). Default 5000. */
  maxSeries?: number;
  /** Agents kept; the one heard from longest ago goes first. Default 2000. */
  maxAgents?: number;
}

/** One request series' cumulative values at one report: [count, sum_ms, bucket counts…]. */
type Values = Float64Array;

interface Snapshot {
  time: number;
  requests: Map<string, Values>;
  /** [opened, sent, received] */
  tcp: Map<string, Values>;
}

interface AgentEntry {
  report: AgentReport;
  receivedAt: number;
  connected: boolean;
  history: Snapshot[];
  labels: Map<string, Record<string, string>>;
  /** CPU seconds at the previous report, for a CPU rate. */
  cpu: { at: number; seconds: number; rate: number };
}

/** Request deltas over a window for one series: what the queries aggregate. */
export interface RequestDelta {
  labels: Record<string, string>;
  count: number;
  sumMs: number;
  /** Per bucket (not cumulative) counts, Istio's bounds, +Inf last. */
  buckets: number[];
  seconds: number;
  node: string;
}

export interface TcpDelta {
  labels: Record<string, string>;
  opened: number;
  bytes: number;
  seconds: number;
  node: string;
}

const keyOf = (l: Record<string, string>): string => Object.keys(l).sort().map((k) => `${k}=${l[k]}`).join('\u0001');

export class MeshDirectory {
  private readonly agents = new Map<string, AgentEntry>();
  private readonly historyMs: number;
  private readonly maxSeries: number;
  private readonly maxAgents: number;
  droppedSeries = 0;

  constructor(o: DirectoryOptions = {}) {
    this.historyMs = o.historyMs ?? 10 * 60_000;
    this.maxSeries = o.maxSeries ?? 5000;
    this.maxAgents = o.maxAgents ?? 2000;
  }

  ingest(r: AgentReport, now = Date.now()): void {
    let a = this.agents.get(r.node);
    if (a === undefined) {
      if (this.agents.size >= this.maxAgents) {
        const oldest = [...this.agents.entries()].sort((x, y) => x[1].receivedAt - y[1].receivedAt)[0];
        if (oldest) this.agents.delete(oldest[0]);
      }
      a = { report: r, receivedAt: now, connected: true, history: [], labels: new Map(), cpu: { at: now, seconds: r.cpu_seconds, rate: 0 } };
      this.agents.set(r.node, a);
    }
    // A restarted agent's counters start again: its old history would read as negative rates.
    if (r.started_at_ms !== a.report.started_at_ms) {
      a.history = [];
      a.cpu = { at: now, seconds: r.cpu_seconds, rate: 0 };
    }
    if (now > a.cpu.at) {
      a.cpu.rate = Math.max(0, (r.cpu_seconds - a.cpu.seconds) / ((now - a.cpu.at) / 1000));
      a.cpu.at = now;
      a.cpu.seconds = r.cpu_seconds;
    }
    a.report = r;
    a.receivedAt = now;
    a.connected = true;
    const snap: Snapshot = { time: now, requests: new Map(), tcp: new Map() };
    const live = new Set<string>();
    for (const s of r.requests.slice(0, this.maxSeries)) {
      const k = `r\u0002${keyOf(s.labels)}`;
      live.add(k);
      if (!a.labels.has(k)) a.labels.set(k, s.labels);
      const v = new Float64Array(2 + s.buckets.length);
      v[0] = s.count;
      v[1] = s.sum_ms;
      v.set(s.buckets, 2);
      snap.requests.set(k, v);
    }
    for (const s of r.tcp.slice(0, this.maxSeries)) {
      const k = `t\u0002${keyOf(s.labels)}`;
      live.add(k);
      if (!a.labels.has(k)) a.labels.set(k, s.labels);
      snap.tcp.set(k, Float64Array.of(s.opened, s.sent_bytes + s.received_bytes));
    }
    this.droppedSeries += Math.max(0, r.requests.length - this.maxSeries) + Math.max(0, r.tcp.length - this.maxSeries);
    a.history.push(snap);
    while (a.history.length > 1 && a.history[0]!.time < now - this.historyMs) a.history.shift();
    if (a.labels.size > 2 * live.size + 100) for (const k of a.labels.keys()) if (!live.has(k)) a.labels.delete(k);
  }

  /** The agent's stream ended: it stays listed (not connected) until it reports again. */
  disconnected(node: string): void {
    const a = this.agents.get(node);
    if (a) a.connected = false;
  }

  reports(): { report: AgentReport; receivedAt: number; connected: boolean; cpuRate: number }[] {
    return [...this.agents.values()].map((a) => ({ report: a.report, receivedAt: a.receivedAt, connected: a.connected, cpuRate: a.cpu.rate }));
  }

  /** Snapshot of an agent at or just after `t` (the oldest within the history). */
  private base(a: AgentEntry, t: number): Snapshot | undefined {
    for (const s of a.history) if (s.time >= t) return s;
    return a.history[a.history.length - 1];
  }

  /**
   * Every request series' increase over the window ending at `end` (default now), per agent: counter resets
   * count from zero. Agents with a single report in the window give nothing yet.
   */
  requestDeltas(windowMs: number, end = Date.now()): RequestDelta[] {
    const out: RequestDelta[] = [];
    for (const [node, a] of this.agents) {
      const last = this.at(a, end);
      const first = last ? this.base(a, last.time - windowMs) : undefined;
      if (!last || !first || first === last) continue;
      const seconds = (last.time - first.time) / 1000;
      for (const [k, v] of last.requests) {
        const b = first.requests.get(k);
        const reset = b !== undefined && b[0]! > v[0]!;
        const count = v[0]! - (b && !reset ? b[0]! : 0);
        if (count <= 0) continue;
        const buckets: number[] = [];
        let prevNow = 0;
        let prevBase = 0;
        for (let i = 2; i < v.length; i++) {
          const cumNow = v[i]!;
          const cumBase = b && !reset ? (b[i] ?? 0) : 0;
          buckets.push(cumNow - prevNow - (cumBase - prevBase));
          prevNow = cumNow;
          prevBase = cumBase;
        }
        out.push({ labels: a.labels.get(k)!, count, sumMs: v[1]! - (b && !reset ? b[1]! : 0), buckets, seconds, node });
      }
    }
    return out;
  }

  tcpDeltas(windowMs: number, end = Date.now()): TcpDelta[] {
    const out: TcpDelta[] = [];
    for (const [node, a] of this.agents) {
      const last = this.at(a, end);
      const first = last ? this.base(a, last.time - windowMs) : undefined;
      if (!last || !first || first === last) continue;
      const seconds = (last.time - first.time) / 1000;
      for (const [k, v] of last.tcp) {
        const b = first.tcp.get(k);
        const reset = b !== undefined && b[0]! > v[0]!;
        const opened = v[0]! - (b && !reset ? b[0]! : 0);
        const bytes = v[1]! - (b && !reset ? b[1]! : 0);
        if (opened <= 0 && bytes <= 0) continue;
        out.push({ labels: a.labels.get(k)!, opened, bytes, seconds, node });
      }
    }
    return out;
  }

  /** The newest snapshot at or before `t`. */
  private at(a: AgentEntry, t: number): Snapshot | undefined {
    for (let i = a.history.length - 1; i >= 0; i--) if (a.history[i]!.time <= t) return a.history[i];
    return undefined;
  }

  /** How far back history goes (ms), for the widest window a query can ask. */
  get historySpanMs(): number {
    return this.historyMs;
  }
}

/** A latency quantile from per-bucket counts (Istio's bounds), interpolated within the bucket as Prometheus does. */
export function quantile(q: number, buckets: number[]): number | null {
  const total = buckets.reduce((s, n) => s + n, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (seen + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : DURATION_BUCKETS[i - 1]!;
      // The +Inf bucket: Prometheus answers the highest finite bound.
      if (i >= DURATION_BUCKETS.length) return DURATION_BUCKETS[DURATION_BUCKETS.length - 1]!;
      const upper = DURATION_BUCKETS[i]!;
      return lower + (upper - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return DURATION_BUCKETS[DURATION_BUCKETS.length - 1]!;
}
