// How far the control plane's V8 heap may grow past its live data before a full collection.

import v8 from 'node:v8';

/**
 * Default growth, in percent over the live heap. V8's own factor (up to 4x) let the control plane's heap go
 * from 450 MB of live data to 1 GB of mostly garbage across an initial sync and a few changes at 50,000
 * Services, with no full collection in between; at 20 % it stayed under 560 MB, at about one full
 * collection per rebuild (incremental: pauses of ~15 ms). bench/xds-scale.js measures it.
 */
export const DEFAULT_HEAP_GROWTH_PERCENT = 20;

/**
 * Sets V8's heap growing factor to 1 + percent/100 for this process (0: V8's own heuristics). V8 reads it each
 * time it sets the next limit, so setting it at startup takes effect for the whole run. Not for library use:
 * it changes the whole process's collector.
 */
export function setHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > 1000) throw new RangeError(`heap growth must be an integer percent from 0 to 1000, not ${percent}`);
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
