// Per-request Prometheus metrics with Istio's names, labels and buckets, so existing dashboards work:
// istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes, istio_response_bytes.
//
// Label sets repeat (a client talks to a few services with a few outcomes), so each distinct set is one
// `Series` found by a key the caller builds cheaply: recording a request is a map hit and a few additions.
// prom-client's own Counter and Histogram hash all 19 label values on every update (four times a request);
// here the four metrics are views over the same series, registered with prom-client for exposition (the
// same text and JSON shapes: `/metrics`, the worker aggregation, the control-plane report).
// No label ever carries a path or another client-chosen string.

import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';

export const REQUEST_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export type RequestLabelName = (typeof REQUEST_LABELS)[number];
export type RequestLabels = Record<RequestLabelName, string>;

/** Istio's default buckets (milliseconds). */
export const DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's size buckets (bytes): powers of ten. */
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/** One histogram's cells for one label set: per-bucket counts (not cumulative; the last is above every bound). */
interface Cells {
  counts: Float64Array;
  sum: number;
  count: number;
}

/** Everything recorded for one label set. */
interface Series {
  labels: RequestLabels;
  requests: number;
  duration: Cells;
  requestBytes: Cells;
  responseBytes: Cells;
}

/** Caller keys remembered; past it, a request's series is found by its label values (slower, still right). */
const MAX_CACHED = 10_000;

function cells(bounds: readonly number[]): Cells {
  return { counts: new Float64Array(bounds.length + 1), sum: 0, count: 0 };
}

function observe(c: Cells, bounds: readonly number[], v: number): void {
  let i = 0;
  while (i < bounds.length && v > bounds[i]!) i++;
  c.counts[i]!++;
  c.sum += v;
  c.count++;
}

type Part = 'duration' | 'requestBytes' | 'responseBytes';

/** A prom-client metric over the shared series: what the registry asks of a metric (`get`, `reset`). */
class SeriesView {
  readonly aggregator = 'sum' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly store: SeriesStore,
    private readonly part: Part | null,
    private readonly bounds: readonly number[] = [],
  ) {}

  get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const values: MetricValue<string>[] = [];
    for (const s of this.store.all()) {
      if (this.part === null) {
        values.push({ labels: s.labels, value: s.requests });
        continue;
      }
      const c = s[this.part];
      let acc = 0;
      const bucket = `${this.name}_bucket`;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.counts[i]!;
        values.push({ labels: { ...s.labels, le: this.bounds[i]! }, value: acc, metricName: bucket } as MetricValue<string>);
      }
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: c.count, metricName: bucket } as MetricValue<string>);
      values.push({ labels: s.labels, value: c.sum, metricName: `${this.name}_sum` } as MetricValue<string>);
      values.push({ labels: s.labels, value: c.count, metricName: `${this.name}_count` } as MetricValue<string>);
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator } as unknown as MetricObjectWithValues<MetricValue<string>>);
  }

  /** The registry's reset: the four views share the series, so it clears them for all four. */
  reset(): void {
    this.store.clear();
  }
}

interface SeriesStore {
  all(): Iterable<Series>;
  clear(): void;
}

export class RequestMetrics {
  /** Every label set seen, by its label values. */
  private readonly series = new Map<string, Series>();
  /** Caller keys to their series. */
  private readonly byKey = new Map<string, Series>();

  constructor(registry: Registry) {
    const store: SeriesStore = {
      all: () => this.series.values(),
      clear: () => {
        this.series.clear();
        this.byKey.clear();
      },
    };
    const views = [
      new SeriesView('istio_requests_total', 'Requests served, by source, destination and outcome', 'counter', store, null),
      new SeriesView('istio_request_duration_milliseconds', 'Request duration in milliseconds, from the first request byte to the last response byte', 'histogram', store, 'duration', DURATION_BUCKETS),
      new SeriesView('istio_request_bytes', 'Request body sizes in bytes', 'histogram', store, 'requestBytes', SIZE_BUCKETS),
      new SeriesView('istio_response_bytes', 'Response body sizes in bytes', 'histogram', store, 'responseBytes', SIZE_BUCKETS),
    ];
    for (const v of views) registry.registerMetric(v as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  record(labels: RequestLabels, durationMs: number, requestBytes: number, responseBytes: number): RequestLabels {
    let key = '';
    for (const n of REQUEST_LABELS) key += `${labels[n]}\u0001`;
    return this.recordKeyed(key, () => labels, durationMs, requestBytes, responseBytes);
  }

  /**
   * Like record(), for callers that can name a request's label set by a cheaper key of their own: the
   * labels are built only the first time a key is seen. The same key must always mean the same labels.
   * Returns the request's labels (built once per label set), for an access line.
   */
  recordKeyed(key: string, labelsOf: () => RequestLabels, durationMs: number, requestBytes: number, responseBytes: number): RequestLabels {
    let s = this.byKey.get(key);
    if (s === undefined) {
      s = this.seriesOf(labelsOf());
      if (this.byKey.size < MAX_CACHED) this.byKey.set(key, s);
    }
    s.requests++;
    observe(s.duration, DURATION_BUCKETS, durationMs);
    observe(s.requestBytes, SIZE_BUCKETS, requestBytes);
    observe(s.responseBytes, SIZE_BUCKETS, responseBytes);
    return s.labels;
  }

  private seriesOf(labels: RequestLabels): Series {
    // Series print their labels in the order given: Istio's, whatever order the caller built them in.
    const ordered = {} as RequestLabels;
    let id = '';
    for (const n of REQUEST_LABELS) {
      ordered[n] = labels[n];
      id += `${labels[n]}\u0001`;
    }
    let s = this.series.get(id);
    if (s === undefined) {
      s = { labels: ordered, requests: 0, duration: cells(DURATION_BUCKETS), requestBytes: cells(SIZE_BUCKETS), responseBytes: cells(SIZE_BUCKETS) };
      this.series.set(id, s);
    }
    return s;
  }
}
