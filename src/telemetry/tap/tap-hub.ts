// One thread's side of live tap: the filters the control plane subscribed (none: the tap costs a request
// one boolean test), matching, a rate cap and a bounded buffer delivered in batches. A tap can never slow
// the request path by more than a match and a push: no I/O, no await, drops counted instead.

import { tapMatches, type TapEvent, type TapFilter } from './tap-filter';

export interface TapHubOptions {
  /** Events per second this thread sends at most; more are dropped and counted. Default 500. */
  maxPerSecond?: number;
  /** Events buffered between deliveries at most. Default 1000. */
  maxBuffered?: number;
  /** Delivery period. Default 200 ms. */
  intervalMs?: number;
}

export type TapDelivery = (events: TapEvent[], dropped: number) => void;

export class TapHub {
  /** Read on every request: true only while some filter is subscribed. */
  active = false;
  private filters: TapFilter[] = [];
  private buffer: TapEvent[] = [];
  private dropped = 0;
  private windowStart = 0;
  private inWindow = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly maxPerSecond: number;
  private readonly maxBuffered: number;
  private readonly intervalMs: number;
  private deliver: TapDelivery | null = null;

  constructor(o: TapHubOptions = {}) {
    this.maxPerSecond = o.maxPerSecond ?? 500;
    this.maxBuffered = o.maxBuffered ?? 1000;
    this.intervalMs = o.intervalMs ?? 200;
  }

  /** Where batches go (the main thread's stream to the control plane, or a worker's port to it). */
  onDeliver(fn: TapDelivery): void {
    this.deliver = fn;
  }

  /** Replaces the subscribed filters; an empty list turns the tap off. */
  subscribe(filters: TapFilter[]): void {
    this.filters = filters;
    this.active = filters.length > 0;
    if (this.active && this.timer === null) {
      this.timer = setInterval(() => this.flush(), this.intervalMs);
      this.timer.unref();
    } else if (!this.active && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      this.flush();
    }
  }

  /** Whether a request with these facts would be shown: callers build the full event only then. */
  wants(e: TapEvent): boolean {
    for (const f of this.filters) if (tapMatches(f, e)) return true;
    return false;
  }

  offer(e: TapEvent): void {
    if (!this.wants(e)) return;
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.maxPerSecond || this.buffer.length >= this.maxBuffered) {
      this.dropped++;
      return;
    }
    this.inWindow++;
    this.buffer.push(e);
  }

  flush(): void {
    if (this.buffer.length === 0 && this.dropped === 0) return;
    const events = this.buffer;
    const dropped = this.dropped;
    this.buffer = [];
    this.dropped = 0;
    this.deliver?.(events, dropped);
  }

  close(): void {
    this.subscribe([]);
  }
}
