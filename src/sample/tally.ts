// Counts the sample clients' answers (per outcome, pod and version) and their latency, in bounded memory.

/** Latency buckets grow by 1 %: percentiles are exact to within 1 %, whatever the run's length. */
const BASE_MS = 0.001;
const GROWTH = 1.01;
/** Distinct pods, versions or outcomes kept by name; more are counted under OTHER (servers choose these names). */
export const MAX_NAMES = 1000;
export const OTHER = '(other)';

export interface Answer {
  ok: boolean;
  /** Status code or error name: "200", "503", "ECONNREFUSED", "DEADLINE_EXCEEDED". */
  outcome: string;
  /** An error rather than an answer (no status received). */
  error?: boolean;
  pod?: string;
  version?: string;
  ms: number;
}

export interface TallySummary {
  total: number;
  ok: number;
  failed: number;
  byOutcome: Record<string, number>;
  errors: Record<string, number>;
  byPod: Record<string, number>;
  byVersion: Record<string, number>;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  seconds: number;
  rps: number;
}

function bump(m: Map<string, number>, key: string): void {
  const k = m.has(key) || m.size < MAX_NAMES ? key : OTHER;
  m.set(k, (m.get(k) ?? 0) + 1);
}

function sorted(m: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })));
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

export class Tally {
  private readonly t0 = process.hrtime.bigint();
  private total = 0;
  private ok = 0;
  private maxMs = 0;
  private readonly outcomes = new Map<string, number>();
  private readonly errors = new Map<string, number>();
  private readonly pods = new Map<string, number>();
  private readonly versions = new Map<string, number>();
  private readonly buckets = new Map<number, number>();

  add(a: Answer): void {
    this.total++;
    if (a.ok) this.ok++;
    bump(a.error ? this.errors : this.outcomes, a.outcome);
    if (a.pod) bump(this.pods, a.pod);
    if (a.version) bump(this.versions, a.version);
    this.maxMs = Math.max(this.maxMs, a.ms);
    const b = a.ms <= BASE_MS ? 0 : Math.ceil(Math.log(a.ms / BASE_MS) / Math.log(GROWTH));
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
  }

  /** Nearest rank: the smallest latency that at least p % of the answers did not exceed (bucket's upper edge). */
  percentile(p: number): number {
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (const b of [...this.buckets.keys()].sort((x, y) => x - y)) {
      seen += this.buckets.get(b) ?? 0;
      if (seen >= rank) return round(Math.min(BASE_MS * GROWTH ** b, this.maxMs));
    }
    return 0;
  }

  summary(): TallySummary {
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    return {
      total: this.total,
      ok: this.ok,
      failed: this.total - this.ok,
      byOutcome: sorted(this.outcomes),
      errors: sorted(this.errors),
      byPod: sorted(this.pods),
      byVersion: sorted(this.versions),
      latencyMs: { p50: this.percentile(50), p90: this.percentile(90), p99: this.percentile(99), max: round(this.maxMs) },
      seconds: round(seconds),
      rps: seconds > 0 ? Math.round((this.total / seconds) * 10) / 10 : 0,
    };
  }
}
