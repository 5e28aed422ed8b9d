// A worker thread's span sink: spans are batched and posted to the main thread, which owns the one exporter
// (one connection to the collector per agent, whatever the thread count). Bounded like the export queue:
// past `maxQueue` spans waiting, new ones are dropped and counted in this thread's registry.

import { Counter, type Registry } from 'prom-client';
import type { SpanRecord } from './span';
import type { SpanSink } from './span-queue';

export class ForwardingSpanSink implements SpanSink {
  private batch: SpanRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly dropped: Counter<'reason'>;

  constructor(
    private readonly post: (spans: SpanRecord[]) => void,
    registry: Registry,
    private readonly maxQueue = 2048,
    private readonly intervalMs = 250,
  ) {
    this.dropped = new Counter({
      name: 'nodemesh_tracing_spans_dropped_total',
      help: 'Spans dropped: queue_full (the collector is slower than the traffic, or down), export_failed (the collector refused or did not answer)',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  record(span: SpanRecord): void {
    if (this.batch.length >= this.maxQueue) {
      this.dropped.inc({ reason: 'queue_full' });
      return;
    }
    this.batch.push(span);
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.batch.length === 0) return;
    const spans = this.batch;
    this.batch = [];
    this.post(spans);
  }
}
