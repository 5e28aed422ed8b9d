// A finished span as the agent keeps it until export: plain data (it crosses from worker threads to the
// main thread by structured clone), ids as hex, times as Unix milliseconds with sub-millisecond digits.

export type AttributeValue = string | number | boolean | string[];

export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

/** Who produced the span: OTLP's Resource. One per local workload, shared by its spans. */
export interface SpanResource {
  /** `service.name` and friends, as OTLP resource attributes. */
  attributes: [string, AttributeValue][];
  /** Stable key to group spans by resource when exporting. */
  key: string;
}

export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  traceState: string | null;
  name: string;
  kind: number;
  /** Unix epoch milliseconds (fractional). */
  startMs: number;
  endMs: number;
  attributes: [string, AttributeValue][];
  status: { code: number; message?: string };
  /** W3C trace flags: 1 when the trace was sampled; 0 for a span kept only because the request failed. */
  flags: number;
  resource: SpanResource;
}

/** Integer attributes (status codes, sizes) are OTLP int values; everything else numeric is a double. */
export function isIntAttribute(key: string): boolean {
  return INT_KEYS.has(key);
}

const INT_KEYS = new Set([
  'http.response.status_code',
  'server.port',
  'client.port',
  'network.peer.port',
  'http.request.resend_count',
  'http.request.body.size',
  'http.response.body.size',
  'rpc.grpc.status_code',
]);

/** Wall clock in Unix milliseconds with sub-millisecond resolution (Date.now() has whole milliseconds). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Unix ms at `process.hrtime.bigint()` 0, so a request's own start stamp gives its span's start (no clock read). */
const HRTIME_EPOCH_MS = nowMs() - Number(process.hrtime.bigint()) / 1e6;

export function hrtimeToEpochMs(t: bigint): number {
  return HRTIME_EPOCH_MS + Number(t) / 1e6;
}
