// After a large xDS change, hands the memory it left behind back to the kernel once.

import type { Logger } from '../telemetry/logger';
import { forgetRouteParts } from '../xds/decode-routes';
import { forgetInterned } from '../xds/decode-util';

/** Resources changed by one commit from which a change counts as large. */
export const LARGE_CONFIG_CHANGE = 1_000;
/** Quiet time after the last large commit: a big config arrives in many responses within a few hundred ms. */
const SETTLE_MS = 1_000;

/**
 * Decoding a large config (a first sync, a restore, a reconnect after many changes) goes through 1 MiB gRPC
 * messages, their decoded trees and the replaced sets: free memory that glibc and V8 keep. At 10,000 Services that
 * was ~37 MB of the agent's RSS after the sync (bench/results/xds-scale/). Once such a burst settles, one
 * `relieve` (the decoders' sharing tables let go, a full GC, then malloc_trim: the addon's relieveMemory) returns it;
 * small changes never trigger it, so the data path pays one GC per large config change, not per push.
 */
export class ConfigRelief {
  private timer: NodeJS.Timeout | null = null;
  private changed = 0;

  constructor(
    private readonly relieve: (() => void) | undefined,
    private readonly log: Logger,
  ) {}

  /** One commit of `count` resources (a whole set, or the changes of one type). */
  committed(count: number): void {
    if (!this.relieve || count < LARGE_CONFIG_CHANGE) return;
    this.changed += count;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), SETTLE_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private run(): void {
    this.timer = null;
    const before = process.memoryUsage.rss();
    forgetInterned();
    forgetRouteParts();
    this.relieve!();
    const after = process.memoryUsage.rss();
    this.log.info({ resources: this.changed, rssBeforeMb: mb(before), rssAfterMb: mb(after) }, 'a large xDS change is applied: memory handed back to the kernel');
    this.changed = 0;
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 104857.6) / 10;
}
