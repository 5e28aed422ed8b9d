// The control plane's dashboard API, typed as the views use it, and a polling hook.
import { useEffect, useState } from 'react';

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

export interface TapEvent {
  time: number;
  node: string;
  reporter: 'source' | 'destination';
  sourceWorkload: string;
  sourceNamespace: string;
  destinationWorkload: string;
  destinationNamespace: string;
  destinationService: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string | null;
  flags: string;
  route: string | null;
  cluster: string | null;
  endpoint: string | null;
  latencyMs: number;
  mtls: boolean;
  requestId: string;
  traceId: string | null;
  traceKept: boolean;
}

export interface TraceSummary {
  traceId: string;
  name: string;
  service: string;
  startMs: number;
  durationMs: number;
  spans: number;
  failed: boolean;
  failureOnly: boolean;
  services: string[];
  status: number | null;
}

export type AttributeValue = string | number | boolean | string[];

export interface Span {
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

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function get<T>(path: string): Promise<T> {
  const r = await fetch(path);
  const body = (await r.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!r.ok) throw new ApiError(r.status, body.error?.code ?? 'HTTP', body.error?.message ?? `HTTP ${r.status}`);
  return body as T;
}

/** GETs `path` now and every `everyMs`; keeps the last good answer while a poll fails. */
export function usePoll<T>(path: string | null, everyMs = 3000): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    let stop = false;
    const run = (): void => {
      get<T>(path).then(
        (d) => {
          if (stop) return;
          setData(d);
          setError(null);
        },
        (e: Error) => !stop && setError(e.message),
      );
    };
    run();
    const t = setInterval(run, everyMs);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [path, everyMs]);
  return { data, error };
}
