// What the agent is told about tracing (flags, or the lab's defaults): sampling, and where spans go. Parsed
// and checked here, so a bad flag stops the agent at start with a message that says what to write.

import { channelCredentials, type ControlPlaneTls } from '../../xds/channel-credentials';
import { OtlpGrpcExporter } from './otlp-grpc-exporter';
import { OtlpHttpExporter } from './otlp-http-exporter';
import { TRACING_ERR, TracingConfigError, type SamplingConfig } from './sampling';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger';
import { SpanQueue, SpanQueueMetrics, type SpanExporter, type SpanQueueOptions } from './span-queue';

export type OtlpProtocol = 'grpc' | 'http/protobuf';

export interface OtlpEndpoint {
  protocol: OtlpProtocol;
  /** gRPC: `host:port` or `unix:///path`; HTTP: the full URL of the traces path. */
  address: string;
  /** gRPC to the control plane's TLS port: its mesh root, and the node token sent with every export. */
  tls?: ControlPlaneTls;
}

/** Plain data: it crosses to worker threads as is. */
export interface TracingOptions {
  sampling: SamplingConfig;
  /** Where spans are exported; null records none (no trace headers are touched either). */
  endpoint: OtlpEndpoint | null;
  queue?: SpanQueueOptions;
}

/**
 * `--otlp-endpoint`: `http(s)://host:port[/path]` is OTLP/HTTP protobuf (path `/v1/traces` when none is
 * given) unless `protocol` says grpc; `grpc://host:port`, `host:port` and `unix:///path` are OTLP/gRPC.
 */
export function parseOtlpEndpoint(value: string, protocol?: string): OtlpEndpoint {
  if (protocol !== undefined && protocol !== 'grpc' && protocol !== 'http/protobuf') {
    throw new TracingConfigError(TRACING_ERR.BAD_ENDPOINT, `--otlp-protocol must be grpc or http/protobuf, not "${protocol}"`);
  }
  const v = value.trim();
  const bad = (why: string): TracingConfigError =>
    new TracingConfigError(TRACING_ERR.BAD_ENDPOINT, `--otlp-endpoint "${value}": ${why}`, {
      hint: 'e.g. http://otel-collector:4318, grpc://jaeger:4317, unix:///run/nodemesh/otlp.sock',
    });
  if (v.startsWith('unix:')) {
    if (protocol === 'http/protobuf') throw bad('a unix socket is served over gRPC here; drop --otlp-protocol');
    if (!/^unix:(\/\/)?\/./.test(v)) throw bad('a unix socket needs an absolute path');
    return { protocol: 'grpc', address: v };
  }
  if (/^https?:\/\//.test(v)) {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw bad('not a URL');
    }
    if (protocol === 'grpc') return { protocol: 'grpc', address: `${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}` };
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces';
    return { protocol: 'http/protobuf', address: u.href };
  }
  const hostPort = v.startsWith('grpc://') ? v.slice('grpc://'.length) : v;
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(hostPort)) throw bad('expected a URL, host:port or unix:///path');
  if (protocol === 'http/protobuf') return { protocol: 'http/protobuf', address: `http://${hostPort}/v1/traces` };
  return { protocol: 'grpc', address: hostPort };
}

export function createExporter(e: OtlpEndpoint): SpanExporter {
  if (e.protocol !== 'grpc') return new OtlpHttpExporter(e.address);
  if (!e.tls) return new OtlpGrpcExporter(e.address);
  const { creds, options } = channelCredentials(e.tls);
  return new OtlpGrpcExporter(e.address, creds, options);
}

/** The exporting end of a thread that owns the exporter (the agent's main thread): null when tracing is off. */
export function createSpanQueue(o: TracingOptions, registry: Registry, log: Logger): SpanQueue | null {
  if (o.endpoint === null) return null;
  return new SpanQueue(createExporter(o.endpoint), new SpanQueueMetrics(registry), log, o.queue);
}
