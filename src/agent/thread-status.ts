// What the admin endpoints report across threads: the main thread's runtime plus each data-plane worker's answer.

import { AggregatorRegistry, type Registry } from 'prom-client';
import { clusterReport, type ClusterReport } from '../proxy/http/cluster-report';
import type { ConnectionTracker } from '../proxy/connection-tracker';
import type { ProxyRuntime } from '../proxy/runtime';
import { isProcessWide } from '../telemetry/default-metrics';
import type { WorkerStats } from './worker-protocol';
import type { DataPlaneWorkers, WorkerStatus } from './workers';

export type WorkerReport = WorkerStatus & {
  answering: boolean;
  connections?: number;
  heldFds?: number;
  hboneClient?: WorkerStats['hboneClient'];
  hboneServers?: WorkerStats['hboneServers'];
};

/**
 * Each worker thread's state and, when it answers, its connections, HBONE pool and servers, and the raw fds
 * it holds. `answering: false` on a running worker means its event loop did not reply within 2 s (stuck or
 * overloaded; the watchdog restarts it once it has been silent for the stall timeout).
 */
export async function workersStatus(workers: DataPlaneWorkers | null): Promise<WorkerReport[]> {
  if (!workers) return [];
  const stats = new Map((await workers.stats()).map((s) => [s.index, s]));
  return workers.status().map((w) => {
    const s = stats.get(w.index);
    return s
      ? { ...w, answering: true, connections: s.connections.active.length, heldFds: s.heldFds, hboneClient: s.hboneClient, hboneServers: s.hboneServers }
      : { ...w, answering: false };
  });
}

/**
 * Prometheus text of every thread. A metric the workers have too gets a `thread` label (0: the main thread)
 * rather than a sum: a restarted worker's counters start again from zero as their own series, which rate()
 * reads as a reset, where a sum going down would read as a huge increase.
 */
export async function metricsText(registry: Registry, runtime: ProxyRuntime, workers: DataPlaneWorkers | null): Promise<string> {
  runtime.tracker.flush();
  if (!workers) return registry.metrics();
  // process-wide metrics (memory, fds, CPU) come once, from the main thread's registry
  const stats = (await workers.stats()).map((w) => ({ ...w, metrics: w.metrics.filter((m) => !isProcessWide(m.name)) }));
  const perThread = new Set(stats.flatMap((w) => w.metrics.map((m) => m.name)));
  const label = (metrics: WorkerStats['metrics'], thread: number): WorkerStats['metrics'] =>
    metrics.map((m) => (perThread.has(m.name) ? { ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, thread } })) } : m));
  const parts = [label(await registry.getMetricsAsJSON(), 0), ...stats.map((w) => label(w.metrics, w.index))];
  return AggregatorRegistry.aggregate(parts).metrics();
}

/** Open and recently closed connections of every thread (`thread` 0 is the main thread). */
export async function allConnections(runtime: ProxyRuntime, workers: DataPlaneWorkers | null): Promise<ReturnType<ConnectionTracker['snapshot']>> {
  const tag = (thread: number, s: ReturnType<ConnectionTracker['snapshot']>) => ({
    active: s.active.map((c) => ({ ...c, thread })),
    recent: s.recent.map((c) => ({ ...c, thread })),
  });
  const all = [tag(0, runtime.tracker.snapshot()), ...(workers ? await workers.stats() : []).map((s) => tag(s.index, s.connections))];
  return { active: all.flatMap((s) => s.active), recent: all.flatMap((s) => s.recent) };
}

/** Every thread's per-cluster L7 state (requests in flight, endpoints' outlier state). */
export async function allL7Clusters(runtime: ProxyRuntime, workers: DataPlaneWorkers | null): Promise<ClusterReport[]> {
  return l7ClustersOf(runtime, workers ? await workers.stats() : []);
}

/** The same, from worker answers already in hand. */
export function l7ClustersOf(runtime: ProxyRuntime, stats: WorkerStats[]): ClusterReport[] {
  const main = runtime.ctx.http ? clusterReport(runtime.ctx.http.states, 0) : [];
  return [...main, ...stats.flatMap((s) => s.l7Clusters)];
}
