// The dashboard API's JSON shapes (/api/graph, /api/services, /api/workloads, /api/agents, /api/traces,
// /api/tap): what mesh-queries.ts, the trace store and the tap answer, and what the UI (ui/src/api.ts) reads.
// Type-only and without imports of anything that needs Node, so both builds share this one definition.

export type { TapEvent } from '../../telemetry/tap/tap-event';

export interface Signals {
  rps: number;
  successRate: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  requests: number;
  errors: number;
}

export interface GraphNode {
  id: string;
  kind: 'workload' | 'service' | 'outside';
  name: string;
  namespace: string;
}

export interface GraphEdge {
  source: string;
  target: string;
  protocol: 'http' | 'grpc' | 'tcp';
  mtls: boolean;
  signals: Signals;
  /** TCP edges: bytes per second both ways and connections per second. */
  bytesPerSecond?: number;
  connectionsPerSecond?: number;
}

export interface RouteView {
  name: string;
  namespace: string;
  kind: string;
  rules: { matches: string[]; backends: { name: string; port?: number; weight: number }[] }[];
}

export interface ServiceView {
  service: string;
  name: string;
  namespace: string;
  signals: Signals;
  /** Oldest first: one point per step over the history window. */
  history: { time: number; rps: number; successRate: number | null; p99: number | null }[];
  workloads: { workload: string; namespace: string; signals: Signals }[];
  endpoints: { address: string; pod: string; cluster: string; healthy: boolean; ejected: boolean; active: number; consecutive5xx: number; ejections: number; seenBy: string[] }[];
  routes: RouteView[];
}

export interface WorkloadView {
  workload: string;
  namespace: string;
  inbound: Signals;
  outbound: Signals;
}

export interface AgentView {
  node: string;
  version: string;
  connected: boolean;
  ready: boolean;
  notReadyReason: string;
  lastReportAgoMs: number;
  uptimeS: number;
  cpuCores: number;
  rssBytes: number;
  heapUsedBytes: number;
  threads: number;
  pods: number;
  xds: { connected: boolean; synced: boolean; mode: string; lastNack: Record<string, string>; lastError: string } | null;
  certificates: { identity: string; serial: string; notAfter: number; expiresInS: number; state: string; lastError: string }[];
  tracing: { endpoint: string; exported: number; dropped: number; defaultPercent: number } | null;
}

export interface TraceSummary {
  traceId: string;
  /** The root span's name, else the earliest span's. */
  name: string;
  /** `service.name` of the root (or earliest) span. */
  service: string;
  startMs: number;
  durationMs: number;
  spans: number;
  failed: boolean;
  /** Every span kept only because its request failed (not sampled). */
  failureOnly: boolean;
  services: string[];
  status: number | null;
}

export type AttributeValue = string | number | boolean | string[];

/** A span as `/api/traces/ID` serves it (what the trace store received over OTLP). */
export interface SpanView {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: [string, AttributeValue][];
  status: { code: number; message?: string };
  flags: number;
  resource: Record<string, AttributeValue>;
}
