// How far the control plane's V8 heap may grow past its data before a full collection: a headroom in MB, not
// V8's factor, so a large config's heap stays bounded and a small one's collector does not run on every change.

import v8 from 'node:v8';

/**
 * Default headroom over the heap in use after a rebuild. V8's own factor (up to 4x) let the heap at 50,000
 * Services go from 450 MB of live data to 1 GB, mostly garbage, over an initial sync and a few changes, with
 * no full collection in between. A fixed 20 % kept it near 500 MB but, at 10,000 Services (150 MB live),
 * collected two or three times per change and doubled the change's time.
 */
export const DEFAULT_HEAP_HEADROOM_MB = 160;
/** Bounds on the growth set (percent over the heap in use): V8 reads it each time it sets the next limit. */
const MIN_PERCENT = 20;
const MAX_PERCENT = 100;

/**
 * Keeps V8's heap growing factor (1 + percent/100) at about `headroomMB` over the heap in use, within
 * 20-100 %; `adjust` after each rebuild (the heap's size changes with the config). 0 leaves V8's own
 * heuristics. It changes the whole process's collector: for the control plane's process, not a library.
 */
export class HeapGrowth {
  private percent: number | undefined;

  constructor(private readonly headroomMB: number) {
    if (!Number.isInteger(headroomMB) || headroomMB < 0 || headroomMB > 65536) throw new RangeError(`heap headroom must be whole MB from 0 to 65536, not ${headroomMB}`);
    this.adjust();
  }

  /** Sets the growth for the heap in use now; returns the percent (undefined: V8's own). */
  adjust(usedBytes = v8.getHeapStatistics().used_heap_size): number | undefined {
    if (this.headroomMB === 0) return undefined;
    const want = Math.round((100 * this.headroomMB * 1048576) / Math.max(usedBytes, 1));
    const percent = Math.min(MAX_PERCENT, Math.max(MIN_PERCENT, want));
    if (percent !== this.percent) {
      v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
      this.percent = percent;
    }
    return percent;
  }
}
