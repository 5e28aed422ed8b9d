// The control plane's embedded trace backend: the last N traces received over OTLP, in memory, so the
// dashboard shows traces with no collector installed. Bounded three ways (traces, spans per trace, spans in
// all); the oldest trace goes first. Failed traces are listed first: that is what someone on call opens.

import type { AttributeValue } from '../../telemetry/tracing/span';
import type { ReceivedSpan } from '../../telemetry/tracing/otlp-proto';
import type { SpanView, TraceSummary } from './dashboard-api';

export type { TraceSummary };

/** What the API serves of a received span must stay what the UI reads: this fails to compile otherwise. */
type SpanViewHolds = ReceivedSpan extends SpanView ? true : never;
export const SPAN_VIEW_HOLDS: SpanViewHolds = true;

export interface TraceStoreOptions {
  /** Traces kept. Default 1000. */
  maxTraces?: number;
  /** Spans kept per trace; later ones are counted as dropped. Default 500. */
  maxSpansPerTrace?: number;
  /** Spans kept in all; the oldest traces are evicted to stay under it. Default 50,000. */
  maxSpans?: number;
}

interface StoredTrace {
  traceId: string;
  spans: ReceivedSpan[];
  droppedSpans: number;
  receivedAt: number;
  /** A span of it failed: kept longer than a successful trace (see evict). */
  failed: boolean;
}


export interface TraceQuery {
  /** Only traces with a span of this `service.name` or mesh workload. */
  service?: string;
  failedOnly?: boolean;
  limit?: number;
}

function attr(s: ReceivedSpan, key: string): AttributeValue | undefined {
  for (const [k, v] of s.attributes) if (k === key) return v;
  return undefined;
}

export function spanFailed(s: ReceivedSpan): boolean {
  return s.status.code === 2;
}

export class TraceStore {
  private readonly traces = new Map<string, StoredTrace>();
  private spanCount = 0;
  private failedCount = 0;
  private readonly maxTraces: number;
  private readonly maxSpansPerTrace: number;
  private readonly maxSpans: number;
  /** Counters for /metrics. */
  received = 0;
  dropped = 0;

  constructor(o: TraceStoreOptions = {}) {
    this.maxTraces = o.maxTraces ?? 1000;
    this.maxSpansPerTrace = o.maxSpansPerTrace ?? 500;
    this.maxSpans = o.maxSpans ?? 50_000;
  }

  add(spans: ReceivedSpan[]): void {
    const now = Date.now();
    for (const s of spans) {
      this.received++;
      if (!/^[0-9a-f]{32}$/.test(s.traceId) || !/^[0-9a-f]{16}$/.test(s.spanId)) {
        this.dropped++;
        continue;
      }
      let t = this.traces.get(s.traceId);
      if (t === undefined) {
        t = { traceId: s.traceId, spans: [], droppedSpans: 0, receivedAt: now, failed: false };
        this.traces.set(s.traceId, t);
      }
      if (t.spans.length >= this.maxSpansPerTrace) {
        t.droppedSpans++;
        this.dropped++;
        continue;
      }
      t.spans.push(s);
      this.spanCount++;
      if (!t.failed && spanFailed(s)) {
        t.failed = true;
        this.failedCount++;
      }
    }
    this.evict();
  }

  private full(): boolean {
    return this.traces.size > this.maxTraces || this.spanCount > this.maxSpans;
  }

  /**
   * Oldest first, but failed traces (what an on-call engineer opens first) outlive successful ones while they
   * hold no more than half the store: a busy service's successes do not push its failures out within seconds.
   */
  private evict(): void {
    if (!this.full()) return;
    const failedShare = Math.floor(this.maxTraces / 2);
    for (const [id, t] of this.traces) {
      if (!this.full()) return;
      if (t.failed && this.failedCount <= failedShare) continue;
      this.drop(id, t);
    }
    for (const [id, t] of this.traces) {
      if (!this.full()) return;
      this.drop(id, t);
    }
  }

  private drop(id: string, t: StoredTrace): void {
    this.traces.delete(id);
    this.spanCount -= t.spans.length;
    if (t.failed) this.failedCount--;
  }

  get size(): { traces: number; spans: number } {
    return { traces: this.traces.size, spans: this.spanCount };
  }

  get(traceId: string): { traceId: string; spans: ReceivedSpan[]; droppedSpans: number } | null {
    const t = this.traces.get(traceId);
    if (t === undefined) return null;
    return { traceId, spans: [...t.spans].sort((a, b) => a.startMs - b.startMs), droppedSpans: t.droppedSpans };
  }

  summarize(t: { traceId: string; spans: ReceivedSpan[] }): TraceSummary {
    const ids = new Set(t.spans.map((s) => s.spanId));
    const sorted = [...t.spans].sort((a, b) => a.startMs - b.startMs);
    const root = sorted.find((s) => s.parentSpanId === '' || !ids.has(s.parentSpanId)) ?? sorted[0]!;
    const start = sorted[0]!.startMs;
    const end = Math.max(...sorted.map((s) => s.endMs));
    const status = attr(root, 'http.response.status_code');
    return {
      traceId: t.traceId,
      name: root.name,
      service: String(root.resource['service.name'] ?? ''),
      startMs: start,
      durationMs: end - start,
      spans: t.spans.length,
      failed: t.spans.some(spanFailed),
      failureOnly: t.spans.every((s) => (s.flags & 1) === 0),
      services: [...new Set(t.spans.map((s) => String(s.resource['service.name'] ?? '')))],
      status: typeof status === 'number' ? status : null,
    };
  }

  /** Recent traces, failed first, each group newest first. */
  list(q: TraceQuery = {}): TraceSummary[] {
    const out: TraceSummary[] = [];
    for (const t of this.traces.values()) {
      if (q.service !== undefined && !t.spans.some((s) => s.resource['service.name'] === q.service || attr(s, 'nodemesh.destination.workload') === q.service || attr(s, 'nodemesh.source.workload') === q.service)) continue;
      const sum = this.summarize(t);
      if (q.failedOnly && !sum.failed) continue;
      out.push(sum);
    }
    out.sort((a, b) => (a.failed === b.failed ? b.startMs - a.startMs : a.failed ? -1 : 1));
    return out.slice(0, q.limit ?? 100);
  }
}
