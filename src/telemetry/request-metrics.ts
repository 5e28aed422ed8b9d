// Per-request Prometheus metrics with Istio's names, labels and buckets, so existing dashboards work:
// istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes, istio_response_bytes.
//
// Label sets repeat (a client talks to a few services with a few outcomes), so each distinct set's metric
// children are looked up once and kept: recording a request is a string join, a map hit and four updates,
// not four label-object hashes. No label ever carries a path or another client-chosen string.

import { Counter, Histogram, type Registry } from 'prom-client';

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

interface Children {
  requests: ReturnType<Counter<RequestLabelName>['labels']>;
  duration: ReturnType<Histogram<RequestLabelName>['labels']>;
  requestBytes: ReturnType<Histogram<RequestLabelName>['labels']>;
  responseBytes: ReturnType<Histogram<RequestLabelName>['labels']>;
}

/** Distinct label sets whose children are cached; past it, sets are still recorded, just looked up each time. */
const MAX_CACHED = 10_000;

export class RequestMetrics {
  readonly requests: Counter<RequestLabelName>;
  readonly duration: Histogram<RequestLabelName>;
  readonly requestBytes: Histogram<RequestLabelName>;
  readonly responseBytes: Histogram<RequestLabelName>;
  private readonly cache = new Map<string, Children>();

  constructor(registry: Registry) {
    const labelNames = [...REQUEST_LABELS];
    this.requests = new Counter({ name: 'istio_requests_total', help: 'Requests served, by source, destination and outcome', labelNames, registers: [registry] });
    this.duration = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'Request duration in milliseconds, from the first request byte to the last response byte',
      labelNames,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.requestBytes = new Histogram({ name: 'istio_request_bytes', help: 'Request body sizes in bytes', labelNames, buckets: SIZE_BUCKETS, registers: [registry] });
    this.responseBytes = new Histogram({ name: 'istio_response_bytes', help: 'Response body sizes in bytes', labelNames, buckets: SIZE_BUCKETS, registers: [registry] });
  }

  record(labels: RequestLabels, durationMs: number, requestBytes: number, responseBytes: number): void {
    let key = '';
    for (const n of REQUEST_LABELS) key += `${labels[n]}\u0001`;
    this.recordKeyed(key, () => labels, durationMs, requestBytes, responseBytes);
  }

  /**
   * Like record(), for callers that can name a request's label set by a cheaper key of their own: the
   * labels are built only the first time a key is seen. The same key must always mean the same labels.
   */
  recordKeyed(key: string, labelsOf: () => RequestLabels, durationMs: number, requestBytes: number, responseBytes: number): void {
    let c = this.cache.get(key);
    if (c === undefined) {
      const labels = labelsOf();
      // Series print their labels in the order given: Istio's, whatever order the caller built them in.
      const ordered = {} as RequestLabels;
      for (const n of REQUEST_LABELS) ordered[n] = labels[n];
      c = {
        requests: this.requests.labels(ordered),
        duration: this.duration.labels(ordered),
        requestBytes: this.requestBytes.labels(ordered),
        responseBytes: this.responseBytes.labels(ordered),
      };
      if (this.cache.size < MAX_CACHED) this.cache.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(durationMs);
    c.requestBytes.observe(requestBytes);
    c.responseBytes.observe(responseBytes);
  }
}
