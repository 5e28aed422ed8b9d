// Telemetry (both agents): once an exchange is settled, one Istio-named metric observation per request
// (reporter source or destination) and, unless turned off, one JSON access line.

import { UNKNOWN } from '../../../state/workloads';
import type { Logger } from '../../../telemetry/logger';
import type { RequestLabels, RequestMetrics } from '../../../telemetry/request-metrics';
import { headerValue } from '../headers';
import type { Layer, L7Request, RequestContext, RequestResult } from '../request';

/** Which requests get an access line: all, only failed ones (5xx or a response flag), none. */
export type AccessLogMode = 'all' | 'errors' | 'off';

export interface TelemetryOptions {
  metrics: RequestMetrics;
  log: Logger;
  accessLog: AccessLogMode;
  /** Workload metadata of a destination endpoint (app and version labels), when the agent knows them. */
  appVersion?: (podIp: string) => { app?: string; version?: string } | undefined;
}

/** gRPC status codes are 0-16; anything else from an upstream is not a label value we keep. */
function grpcLabel(s: string | null): string {
  return s !== null && /^\d{1,2}$/.test(s) ? s : '-';
}

function serviceParts(host: string): { name: string; namespace: string } {
  const [name, namespace] = host.split('.');
  return { name: name ?? UNKNOWN, namespace: namespace ?? UNKNOWN };
}

function labelsOf(rc: RequestContext, r: RequestResult, o: TelemetryOptions): RequestLabels {
  const c = rc.conn;
  const base = c.labels;
  const flags = rc.flags.length === 0 ? '-' : rc.flags.join(',');
  const common = {
    request_protocol: rc.grpc ? 'grpc' : 'http',
    response_code: String(r.status),
    grpc_response_status: rc.grpc ? grpcLabel(r.grpcStatus) : '-',
    response_flags: flags,
  };
  if (c.direction === 'inbound') return { ...base, ...common };
  // Source side: the destination is whatever endpoint this request went to.
  const ep = rc.endpoint;
  const mtls = rc.target?.via === 'hbone';
  const host = rc.cluster?.host ?? base.destination_service;
  const svc = rc.cluster ? serviceParts(host) : { name: base.destination_service_name, namespace: base.destination_service_namespace };
  const av = ep ? (o.appVersion?.(ep.ip) ?? { app: ep.app, version: ep.version }) : undefined;
  return {
    ...base,
    destination_workload: ep?.pod ?? UNKNOWN,
    destination_workload_namespace: ep?.namespace ?? UNKNOWN,
    destination_principal: mtls ? (rc.target!.peerId ?? UNKNOWN) : UNKNOWN,
    destination_app: av?.app ?? UNKNOWN,
    destination_version: av?.version ?? UNKNOWN,
    destination_service: host,
    destination_service_name: svc.name,
    destination_service_namespace: svc.namespace,
    source_principal: mtls ? base.source_principal : UNKNOWN,
    connection_security_policy: mtls ? 'mutual_tls' : UNKNOWN,
    ...common,
  };
}

function accessLine(req: L7Request, rc: RequestContext, r: RequestResult, labels: RequestLabels): Record<string, unknown> {
  const c = rc.conn;
  return {
    type: 'http',
    direction: c.direction,
    reporter: labels.reporter,
    pod: `${c.pod.namespace}/${c.pod.name}`,
    method: req.method,
    path: req.path,
    protocol: req.version === 'http2' ? 'HTTP/2' : 'HTTP/1.1',
    authority: req.authority,
    status: r.status,
    grpc_status: r.grpcStatus,
    response_flags: labels.response_flags,
    bytes_received: r.requestBytes,
    bytes_sent: r.responseBytes,
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
    upstream_host: rc.target ? `${rc.target.ip}:${rc.target.port}` : null,
    upstream_cluster: rc.cluster?.name ?? null,
    route_name: rc.route?.name ?? null,
    request_id: rc.id,
    user_agent: headerValue(req.headers, 'user-agent') ?? null,
    src: `${c.src.ip}:${c.src.port}`,
    dst: `${c.dst.ip}:${c.dst.port}`,
    source_principal: labels.source_principal,
    destination_principal: labels.destination_principal,
    security: labels.connection_security_policy,
    attempts: rc.attempts,
    detail: rc.detail,
  };
}

export function telemetryLayer(o: TelemetryOptions): Layer {
  return (next) => (req, rc) => {
    // The access line needs the request as the client sent it (layers rewrite path and authority). Access
    // lines are info records: at a quieter log level there is nothing to build.
    const logging = o.accessLog !== 'off' && o.log.isLevelEnabled('info');
    const seen = logging ? { method: req.method, path: req.path, authority: req.authority, version: req.version, headers: req.headers } : null;
    rc.done.push((r) => {
      // Everything the labels depend on, as one string: the label object is built once per distinct set.
      const c = rc.conn;
      c.labelKey ??= Object.values(c.labels).join('\u0001');
      const t = rc.target;
      const key = `${c.labelKey}\u0002${rc.endpoint?.ip ?? ''}\u0002${rc.cluster?.name ?? ''}\u0002${t?.via ?? ''}\u0002${t?.peerId ?? ''}\u0002${r.status}\u0002${rc.grpc ? grpcLabel(r.grpcStatus) : ''}\u0002${rc.flags.join(',')}`;
      const labels = o.metrics.recordKeyed(key, () => labelsOf(rc, r, o), r.durationMs, r.requestBytes, r.responseBytes);
      if (seen === null) return;
      if (o.accessLog === 'errors' && r.status < 500 && rc.flags.length === 0) return;
      o.log.info(accessLine(seen as L7Request, rc, r, labels), 'request');
    });
    return next(req, rc);
  };
}
