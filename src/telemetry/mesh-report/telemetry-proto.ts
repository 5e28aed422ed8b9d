// The mesh telemetry stream's wire shapes and gRPC definition (protos/nodemesh/telemetry/v1/telemetry.proto),
// for both the agent and the control plane; parsed with protobufjs as the CA's is.

import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { grpcCodec } from '../../util/grpc-codec';
import { protosDir } from '../../util/protos-dir';

export const TELEMETRY_SERVICE = 'nodemesh.telemetry.v1.MeshTelemetry';
const PROTO = 'nodemesh/telemetry/v1/telemetry.proto';

export interface WireTapFilter {
  namespace?: string;
  workload?: string;
  path_prefix?: string;
  status?: string;
  reporter?: string;
}

export interface WireTapEvent {
  time_ms: number;
  node: string;
  reporter: string;
  source_workload: string;
  source_namespace: string;
  destination_workload: string;
  destination_namespace: string;
  destination_service: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpc_status: string;
  flags: string;
  route: string;
  cluster: string;
  endpoint: string;
  latency_ms: number;
  mtls: boolean;
  request_id: string;
  trace_id: string;
  trace_kept: boolean;
}

export interface RequestSeries {
  labels: Record<string, string>;
  count: number;
  sum_ms: number;
  buckets: number[];
}

export interface TcpSeries {
  labels: Record<string, string>;
  opened: number;
  sent_bytes: number;
  received_bytes: number;
}

export interface EndpointReport {
  cluster: string;
  address: string;
  pod: string;
  namespace: string;
  active: number;
  ejected: boolean;
  ejected_until_ms: number;
  consecutive_5xx: number;
  ejections: number;
  ewma_ms: number;
  in_mesh: boolean;
}

export interface AgentReport {
  node: string;
  version: string;
  ready: boolean;
  not_ready_reason: string;
  started_at_ms: number;
  time_ms: number;
  cpu_seconds: number;
  rss_bytes: number;
  heap_used_bytes: number;
  threads: number;
  pods: number;
  xds: { connected: boolean; mode: string; synced: boolean; last_nack: Record<string, string>; versions: Record<string, string>; last_error: string } | null;
  certificates: { identity: string; serial: string; not_after_ms: number; state: string; last_error: string }[];
  requests: RequestSeries[];
  tcp: TcpSeries[];
  endpoints: EndpointReport[];
  tracing: { endpoint: string; exported: number; dropped: number; default_percent: number } | null;
}

export interface AgentMessage {
  report?: AgentReport;
  tap?: { events: WireTapEvent[]; dropped: number };
}

export interface ControlMessage {
  tap_filters: WireTapFilter[];
}

const DECODE: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true, objects: true };

let cached: grpc.ServiceDefinition | undefined;

/** The service definition (client and server side). */
export function telemetryService(): grpc.ServiceDefinition {
  if (cached) return cached;
  const root = new protobuf.Root().loadSync(path.join(protosDir(PROTO), PROTO), { keepCase: true });
  const up = grpcCodec(() => root.lookupType('nodemesh.telemetry.v1.AgentMessage'), DECODE);
  const down = grpcCodec(() => root.lookupType('nodemesh.telemetry.v1.ControlMessage'), DECODE);
  cached = {
    Connect: {
      path: `/${TELEMETRY_SERVICE}/Connect`,
      requestStream: true,
      responseStream: true,
      requestSerialize: up.serialize,
      requestDeserialize: up.deserialize,
      responseSerialize: down.serialize,
      responseDeserialize: down.deserialize,
      originalName: 'connect',
    },
  };
  return cached;
}
