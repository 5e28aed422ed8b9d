// Turns an agent's state into the report it streams to the control plane: Istio's request and TCP series
// summed over its threads, its endpoints' outlier state, certificates, xDS state, CPU and memory.

import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { AgentReport, EndpointReport, RequestSeries, TcpSeries } from './telemetry-proto';

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

export interface ReportInputs {
  node: string;
  version: string;
  notReadyReason: string | null;
  startedAtMs: number;
  threads: number;
  pods: number;
  /** Every thread's metrics, summed (one set of series, no `thread` label). */
  metrics: Metrics;
  xds: Record<string, unknown> | null;
  identities: { spiffeId: string; serial: string | null; notAfter: string | null; state: string; lastError: string | null }[];
  endpoints: EndpointReport[];
  tracing: { endpoint: string; defaultPercent: number } | null;
}

const LE_INF = '+Inf';

/** The only series a report reads. */
export const REPORT_METRICS: readonly string[] = [
  'istio_request_duration_milliseconds',
  'istio_tcp_connections_opened_total',
  'istio_tcp_sent_bytes_total',
  'istio_tcp_received_bytes_total',
  'nodemesh_tracing_spans_exported_total',
  'nodemesh_tracing_spans_dropped_total',
];

/**
 * A registry's values of REPORT_METRICS alone. Reading the whole registry every report interval would also run
 * every collector on it (process_* read /proc: open files, status, limits), which cost an idle agent more CPU
 * than everything else it does.
 */
export async function reportMetrics(registry: Registry): Promise<Metrics> {
  const out: Metrics = [];
  for (const name of REPORT_METRICS) {
    const m = registry.getSingleMetric(name);
    if (m) out.push(await m.get());
  }
  return out;
}

function labelsOf(labels: Record<string, string | number>, drop: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (!drop.includes(k)) out[k] = String(v);
  return out;
}

const keyOf = (l: Record<string, string>): string => Object.keys(l).sort().map((k) => `${k}=${l[k]}`).join('\u0001');

function requestSeries(metrics: Metrics): RequestSeries[] {
  const byKey = new Map<string, RequestSeries & { les: Map<string, number> }>();
  const get = (labels: Record<string, string>): RequestSeries & { les: Map<string, number> } => {
    const k = keyOf(labels);
    let s = byKey.get(k);
    if (!s) byKey.set(k, (s = { labels, count: 0, sum_ms: 0, buckets: [], les: new Map() }));
    return s;
  };
  const dur = metrics.find((m) => m.name === 'istio_request_duration_milliseconds');
  for (const v of dur?.values ?? []) {
    const name = (v as { metricName?: string }).metricName ?? '';
    const labels = labelsOf(v.labels as Record<string, string>, ['le']);
    const s = get(labels);
    if (name.endsWith('_bucket')) s.les.set(String((v.labels as Record<string, string>).le), v.value);
    else if (name.endsWith('_sum')) s.sum_ms = v.value;
    else if (name.endsWith('_count')) s.count = v.value;
  }
  const out: RequestSeries[] = [];
  for (const s of byKey.values()) {
    const les = [...s.les.entries()].sort((a, b) => (a[0] === LE_INF ? 1 : b[0] === LE_INF ? -1 : Number(a[0]) - Number(b[0])));
    out.push({ labels: s.labels, count: s.count, sum_ms: s.sum_ms, buckets: les.map(([, n]) => n) });
  }
  return out;
}

function tcpSeries(metrics: Metrics): TcpSeries[] {
  const byKey = new Map<string, TcpSeries>();
  const add = (name: string, field: 'opened' | 'sent_bytes' | 'received_bytes'): void => {
    for (const v of metrics.find((m) => m.name === name)?.values ?? []) {
      const labels = labelsOf(v.labels as Record<string, string>, ['response_flags']);
      const k = keyOf(labels);
      let s = byKey.get(k);
      if (!s) byKey.set(k, (s = { labels, opened: 0, sent_bytes: 0, received_bytes: 0 }));
      s[field] += v.value;
    }
  };
  add('istio_tcp_connections_opened_total', 'opened');
  add('istio_tcp_sent_bytes_total', 'sent_bytes');
  add('istio_tcp_received_bytes_total', 'received_bytes');
  return [...byKey.values()];
}

function counter(metrics: Metrics, name: string): number {
  return (metrics.find((m) => m.name === name)?.values ?? []).reduce((s, v) => s + v.value, 0);
}

export function buildReport(i: ReportInputs): AgentReport {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const xds = i.xds as { connected?: boolean; mode?: string; synced?: boolean; lastNack?: Record<string, string | null>; versions?: Record<string, string>; lastError?: string | null } | null;
  return {
    node: i.node,
    version: i.version,
    ready: i.notReadyReason === null,
    not_ready_reason: i.notReadyReason ?? '',
    started_at_ms: i.startedAtMs,
    time_ms: Date.now(),
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    rss_bytes: mem.rss,
    heap_used_bytes: mem.heapUsed,
    threads: i.threads,
    pods: i.pods,
    xds: xds
      ? {
          connected: xds.connected === true,
          mode: String(xds.mode ?? ''),
          synced: xds.synced === true,
          last_nack: Object.fromEntries(Object.entries(xds.lastNack ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string')),
          versions: xds.versions ?? {},
          last_error: xds.lastError ?? '',
        }
      : null,
    certificates: i.identities.map((c) => ({ identity: c.spiffeId, serial: c.serial ?? '', not_after_ms: c.notAfter ? Date.parse(c.notAfter) : 0, state: c.state, last_error: c.lastError ?? '' })),
    requests: requestSeries(i.metrics),
    tcp: tcpSeries(i.metrics),
    endpoints: i.endpoints,
    tracing: i.tracing
      ? { endpoint: i.tracing.endpoint, exported: counter(i.metrics, 'nodemesh_tracing_spans_exported_total'), dropped: counter(i.metrics, 'nodemesh_tracing_spans_dropped_total'), default_percent: i.tracing.defaultPercent }
      : null,
  };
}
