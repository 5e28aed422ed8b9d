// Finished spans on their way out: a bounded queue, exported in batches off the request path (a timer, one
// export in flight), dropping with a counter when full. A collector that is down or slow therefore costs a
// request one array push at most: no await, no socket, no retry on its path.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../logger';
import { CountedLog } from '../counted-log';
import { encodeExportRequest } from './otlp-proto';
import type { SpanRecord } from './span';

/** Where a span goes when its request ends. `record` never throws and never blocks. */
export interface SpanSink {
  record(span: SpanRecord): void;
}

/** Sends one encoded ExportTraceServiceRequest; rejects when the collector did not take it. */
export interface SpanExporter {
  /** For logs: `otlp-grpc unix:///…`, `otlp-http http://…/v1/traces`. */
  readonly describe: string;
  export(payload: Uint8Array, timeoutMs: number): Promise<void>;
  close(): void;
}

export interface SpanQueueOptions {
  /** Spans held at most; more are dropped (counted) until an export makes room. Default 2048. */
  maxQueue?: number;
  /** Spans per export request. Default 512. */
  batchSize?: number;
  /** Export at least this often while spans wait. Default 1000 ms. */
  intervalMs?: number;
  /** One export may take this long. Default 10 s. */
  timeoutMs?: number;
  /** After a failed export, wait this long before the next (doubling up to 30 s). Default 1000 ms. */
  backoffMs?: number;
}

export class SpanQueueMetrics {
  readonly exported: Counter<string>;
  readonly dropped: Counter<'reason'>;
  readonly queued: Gauge<string>;

  constructor(registry: Registry) {
    this.exported = new Counter({ name: 'nodemesh_tracing_spans_exported_total', help: 'Spans the trace collector accepted', registers: [registry] });
    this.dropped = new Counter({
      name: 'nodemesh_tracing_spans_dropped_total',
      help: 'Spans dropped: queue_full (the collector is slower than the traffic, or down), export_failed (the collector refused or did not answer)',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.queued = new Gauge({ name: 'nodemesh_tracing_queue_spans', help: 'Spans waiting for export', registers: [registry] });
  }
}

export class SpanQueue implements SpanSink {
  private queue: SpanRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private backoffUntil = 0;
  private failures = 0;
  private closed = false;
  private readonly maxQueue: number;
  private readonly batchSize: number;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  private readonly failLog: CountedLog;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly metrics: SpanQueueMetrics,
    log: Logger,
    o: SpanQueueOptions = {},
  ) {
    this.maxQueue = o.maxQueue ?? 2048;
    this.batchSize = o.batchSize ?? 512;
    this.intervalMs = o.intervalMs ?? 1000;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.backoffMs = o.backoffMs ?? 1000;
    this.failLog = new CountedLog(log, 'warn', `trace export to ${exporter.describe} failed; spans dropped`);
  }

  record(span: SpanRecord): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.metrics.dropped.inc({ reason: 'queue_full' });
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.batchSize && !this.inFlight) this.schedule(0);
    else if (this.timer === null) this.schedule(this.intervalMs);
  }

  /** Spans waiting, for tests and status. */
  get size(): number {
    return this.queue.length;
  }

  private schedule(ms: number): void {
    if (this.timer !== null) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    const wait = Math.max(ms, this.backoffUntil - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, wait);
    this.timer.unref();
  }

  /** Sends one batch (if none is in flight); resolves when it is answered. */
  async flush(): Promise<void> {
    this.metrics.queued.set(this.queue.length);
    if (this.inFlight || this.queue.length === 0) return;
    this.inFlight = true;
    const batch = this.queue.splice(0, this.batchSize);
    try {
      await this.exporter.export(encodeExportRequest(batch), this.timeoutMs);
      this.metrics.exported.inc(batch.length);
      this.failures = 0;
      this.backoffUntil = 0;
    } catch (err) {
      this.metrics.dropped.inc({ reason: 'export_failed' }, batch.length);
      this.failures++;
      this.backoffUntil = Date.now() + Math.min(30_000, this.backoffMs * 2 ** Math.min(this.failures - 1, 5));
      this.failLog.record((err as Error).message ?? String(err), { spans: batch.length });
    } finally {
      this.inFlight = false;
      this.metrics.queued.set(this.queue.length);
      if (this.queue.length > 0 && !this.closed) this.schedule(this.queue.length >= this.batchSize ? 0 : this.intervalMs);
    }
  }

  /** Sends what is queued (one attempt per batch, bounded by `deadlineMs`), then stops. */
  async close(deadlineMs = 2000): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const end = Date.now() + deadlineMs;
    while (this.queue.length > 0 && Date.now() < end && this.backoffUntil <= Date.now()) {
      if (this.inFlight) await new Promise((r) => setTimeout(r, 10));
      else await this.flush();
    }
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.queue = [];
    this.failLog.close();
    this.exporter.close();
  }
}
