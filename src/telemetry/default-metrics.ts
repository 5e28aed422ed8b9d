// Node's and the process's own metrics (`process_*`, `nodejs_*`: CPU, memory, file descriptors, event-loop
// lag, heap, GC) on a registry, for the agent and the control plane.
//
// A worker thread collects them too: heap, GC and event-loop lag are per V8 isolate, so each thread's are its
// own series (the agent labels them with `thread`). `process_*` are the whole process's whatever thread reads
// them, so only the main thread's are served (`isProcessWide`).

import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's gauges of the sums of `nodejs_active_handles`, `…_requests` and `…_resources` end in `_total`,
 * which Prometheus reserves for counters (`promtool check metrics` fails them); the per-type gauges stay.
 */
const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * How often the event-loop delay histogram samples (ms). Each sample is a timer that wakes an idle loop: at 20 ms
 * that was 2 ms of CPU per second per thread, most of what an idle agent spent. At 100 ms a stall of 100 ms or
 * more is always seen, a shorter one with probability stall / 100 ms.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export function registerDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const name of MISNAMED) registry.removeSingleMetric(name);
}

/** Series that describe the process, not a thread: a worker's copy would repeat the main thread's. */
export function isProcessWide(name: string): boolean {
  return name.startsWith('process_') || name === 'nodejs_version_info';
}
