// A log line that anyone on the network can trigger, at most twice per interval: the first event as it
// happens, then one line counting the rest by reason.

import type { Logger } from './logger';

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * One event per connection (a refused handshake, a refused client) must not become one log line per
 * connection: a flood of them would be a flood of log lines. The first event of a quiet period is logged in
 * full; later ones are counted, and when the interval ends one line says how many there were, by reason, with
 * the last one's fields as an example. An interval with nothing counted ends the period.
 */
export class CountedLog {
  private timer: NodeJS.Timeout | undefined;
  private counted = 0;
  private byReason: Record<string, number> = {};
  private last: Record<string, unknown> | undefined;
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly level: Level,
    private readonly msg: string,
    private readonly intervalMs = 10_000,
  ) {}

  record(reason: string, fields: Record<string, unknown>): void {
    if (this.closed) return;
    if (!this.timer) {
      this.log[this.level]({ ...fields, reason }, this.msg);
      this.arm();
      return;
    }
    this.counted++;
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
    this.last = fields;
  }

  /** Logs what is counted and stops. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.flush()) this.arm();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Logs the count if there is one; answers whether there was. */
  private flush(): boolean {
    if (this.counted === 0) return false;
    this.log[this.level](
      { ...this.last, count: this.counted, byReason: this.byReason, intervalMs: this.intervalMs },
      `${this.msg}: ${this.counted} more in the last ${this.intervalMs / 1000} s`,
    );
    this.counted = 0;
    this.byReason = {};
    this.last = undefined;
    return true;
  }
}
