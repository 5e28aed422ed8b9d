// Tracing and live tap (both agents). Two layers over one per-request state:
// - `observe` (outermost after telemetry): reads the caller's trace context (W3C, else B3), notes the request
//   as the client sent it, and when the exchange is settled records the span (a CLIENT span at the source
//   agent, a SERVER span at the destination) if the trace is sampled, or if the request failed (5xx or a
//   response flag) and failures are kept; and offers the request to the tap.
// - `propagate` (after the router on the source agent, where the route is known; before the forwarder on
//   the destination): decides sampling (the caller's decision, else the route's, the namespace's or the
//   default rate) and writes the next hop's context: this span as the parent.
// A request that never reaches `propagate` (no route, denied) decides when it ends.
//
// Unsampled requests get ids too and carry them on (flag 00), so when a request fails at both agents
// without being sampled, both kept spans share one trace and the server span's parent is the client span.

import { UNKNOWN } from '../../../state/workloads';
import type { TapHub } from '../../../telemetry/tap/tap-hub';
import type { TapEvent } from '../../../telemetry/tap/tap-filter';
import { SpanKind, StatusCode, hrtimeToEpochMs, type AttributeValue, type SpanRecord } from '../../../telemetry/tracing/span';
import { extractContext, injectContext, type TraceContext } from '../../../telemetry/tracing/trace-context';
import type { Tracer } from '../../../telemetry/tracing/tracer';
import { headerValue } from '../headers';
import type { Layer, L7Request, RequestContext, RequestResult } from '../request';

export interface TracingLayerOptions {
  tracer: Tracer | null;
  tap: TapHub | null;
  node: string;
}

interface TraceState {
  parent: TraceContext | null;
  traceId: string;
  spanId: string;
  sampled: boolean;
  decided: boolean;
  method: string;
  path: string;
  authority: string;
  userAgent: string | undefined;
  version: L7Request['version'];
}

/** Attribute values are bounded: a client chooses them. */
const MAX_VALUE = 1024;
const cap = (s: string): string => (s.length > MAX_VALUE ? s.slice(0, MAX_VALUE) : s);

export function tracingLayers(o: TracingLayerOptions): { observe: Layer; propagate: Layer } {
  const tracer = o.tracer !== null && o.tracer.enabled ? o.tracer : null;
  const tap = o.tap;
  // Between the two layers of one request. A Map, not a WeakMap: `rc.done` runs exactly once per request and
  // removes the entry, and a WeakMap's ephemerons made the collector the largest cost of an unsampled request.
  const states = new Map<RequestContext, TraceState>();

  const decide = (t: TraceState, rc: RequestContext): void => {
    if (t.decided || tracer === null) return;
    t.decided = true;
    if (t.parent !== null) {
      t.traceId = t.parent.traceId;
      t.spanId = tracer.ids.spanId();
    } else {
      const ids = tracer.ids.traceAndSpanId();
      t.traceId = ids.slice(0, 32);
      t.spanId = ids.slice(32);
    }
    t.sampled = tracer.sampler.sample(t.parent?.sampled ?? null, rc.route?.name ?? null, rc.conn.pod.namespace);
  };

  const finish = (t: TraceState, rc: RequestContext, r: RequestResult): void => {
    states.delete(rc);
    const failed = r.status >= 500 || r.status === 0 || rc.flags.length > 0;
    let kept = false;
    if (tracer !== null) {
      decide(t, rc);
      if (t.sampled || (failed && tracer.keepFailures)) {
        kept = true;
        tracer.record(spanOf(tracer, t, rc, r, failed), t.sampled ? 'sampled' : 'failure');
      }
    }
    if (tap !== null && tap.active) tap.offer(tapEvent(o.node, t, rc, r, kept));
  };

  const observe: Layer = (next) => {
    if (tracer === null && tap === null) return next;
    return (req, rc) => {
      const t: TraceState = {
        parent: tracer !== null ? extractContext(req.headers) : null,
        traceId: '',
        spanId: '',
        sampled: false,
        decided: false,
        method: req.method,
        path: req.path,
        authority: req.authority,
        userAgent: headerValue(req.headers, 'user-agent'),
        version: req.version,
      };
      states.set(rc, t);
      rc.done.push((r) => finish(t, rc, r));
      return next(req, rc);
    };
  };

  const propagate: Layer = (next) => {
    if (tracer === null) return next;
    return (req: L7Request, rc) => {
      const t = states.get(rc);
      if (t !== undefined) {
        decide(t, rc);
        const p = t.parent;
        injectContext(req.headers, t.traceId, t.spanId, t.sampled, p?.traceState ?? null, p !== null && p.format !== 'w3c' ? p.format : null);
      }
      return next(req, rc);
    };
  };

  return { observe, propagate };
}

/** Both sides' view of who talked to whom, as the request metrics label it. */
function peers(rc: RequestContext): { srcWorkload: string; srcNs: string; srcPrincipal: string; dstWorkload: string; dstNs: string; dstPrincipal: string; service: string; mtls: boolean } {
  const l = rc.conn.labels;
  if (rc.conn.direction === 'inbound') {
    return {
      srcWorkload: l.source_workload,
      srcNs: l.source_workload_namespace,
      srcPrincipal: l.source_principal,
      dstWorkload: l.destination_workload,
      dstNs: l.destination_workload_namespace,
      dstPrincipal: l.destination_principal,
      service: l.destination_service,
      mtls: l.connection_security_policy === 'mutual_tls',
    };
  }
  const mtls = rc.target?.via === 'hbone';
  return {
    srcWorkload: l.source_workload,
    srcNs: l.source_workload_namespace,
    srcPrincipal: mtls ? l.source_principal : UNKNOWN,
    dstWorkload: rc.endpoint?.pod ?? UNKNOWN,
    dstNs: rc.endpoint?.namespace ?? UNKNOWN,
    dstPrincipal: mtls ? (rc.target!.peerId ?? UNKNOWN) : UNKNOWN,
    service: rc.cluster?.host ?? l.destination_service,
    mtls,
  };
}

function hostPort(authority: string): { host: string; port: number | null } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  if (m === null) return { host: authority, port: null };
  return { host: m[1]!, port: m[2] !== undefined ? Number(m[2]) : null };
}

function spanOf(tracer: Tracer, t: TraceState, rc: RequestContext, r: RequestResult, failed: boolean): SpanRecord {
  const outbound = rc.conn.direction === 'outbound';
  const p = peers(rc);
  const flags = rc.flags.length === 0 ? '-' : rc.flags.join(',');
  const a: [string, AttributeValue][] = [
    ['http.request.method', t.method],
    ['network.protocol.name', 'http'],
    ['network.protocol.version', t.version === 'http2' ? '2' : '1.1'],
    ['user_agent.original', cap(t.userAgent ?? '')],
    ['http.request.header.x-request-id', [rc.id]],
    ['http.request.body.size', r.requestBytes],
    ['http.response.body.size', r.responseBytes],
  ];
  const hp = hostPort(t.authority);
  a.push(['server.address', cap(hp.host)]);
  if (hp.port !== null) a.push(['server.port', hp.port]);
  if (outbound) {
    a.push(['url.full', cap(`http://${t.authority}${t.path}`)]);
    if (rc.target) a.push(['network.peer.address', rc.target.ip], ['network.peer.port', rc.target.port]);
    if (rc.attempts > 1) a.push(['http.request.resend_count', rc.attempts - 1]);
  } else {
    const q = t.path.indexOf('?');
    a.push(['url.path', cap(q < 0 ? t.path : t.path.slice(0, q))], ['url.scheme', 'http'], ['client.address', rc.conn.src.ip]);
    if (q >= 0) a.push(['url.query', cap(t.path.slice(q + 1))]);
  }
  if (r.status > 0) a.push(['http.response.status_code', r.status]);
  if (rc.grpc) {
    a.push(['rpc.system', 'grpc']);
    if (r.grpcStatus !== null && /^\d{1,2}$/.test(r.grpcStatus)) a.push(['rpc.grpc.status_code', Number(r.grpcStatus)]);
  }
  if (failed) a.push(['error.type', rc.flags.length > 0 ? flags : String(r.status)]);
  a.push(
    ['nodemesh.reporter', outbound ? 'source' : 'destination'],
    ['nodemesh.source.workload', p.srcWorkload],
    ['nodemesh.source.namespace', p.srcNs],
    ['nodemesh.source.principal', p.srcPrincipal],
    ['nodemesh.destination.workload', p.dstWorkload],
    ['nodemesh.destination.namespace', p.dstNs],
    ['nodemesh.destination.principal', p.dstPrincipal],
    ['nodemesh.destination.service', p.service],
    ['nodemesh.connection_security_policy', p.mtls ? 'mutual_tls' : 'none'],
    ['nodemesh.response_flags', flags],
    ['nodemesh.sampling', t.sampled ? 'sampled' : 'failure'],
  );
  if (rc.route) a.push(['nodemesh.route', rc.route.name]);
  if (rc.cluster) a.push(['nodemesh.cluster', rc.cluster.name]);
  if (rc.target) a.push(['nodemesh.endpoint', `${rc.target.ip}:${rc.target.port}`]);
  if (outbound && rc.attempts > 0) a.push(['nodemesh.attempts', rc.attempts]);
  // Client spans fail on 4xx too (the caller did not get what it asked for); server spans only on 5xx.
  const error = failed || (outbound && r.status >= 400);
  const host = p.service !== UNKNOWN ? p.service : hp.host;
  return {
    traceId: t.traceId,
    spanId: t.spanId,
    parentSpanId: t.parent?.spanId ?? '',
    traceState: t.parent?.traceState ?? null,
    name: cap(`${t.method} ${host}`),
    kind: outbound ? SpanKind.CLIENT : SpanKind.SERVER,
    startMs: hrtimeToEpochMs(rc.startedAt),
    endMs: hrtimeToEpochMs(rc.startedAt) + r.durationMs,
    attributes: a,
    status: error ? { code: StatusCode.ERROR, message: rc.detail ?? (r.status > 0 ? `HTTP ${r.status}` : 'no response') } : { code: StatusCode.UNSET },
    flags: t.sampled ? 1 : 0,
    resource: tracer.resourceOf(rc.conn.pod),
  };
}

function tapEvent(node: string, t: TraceState, rc: RequestContext, r: RequestResult, kept: boolean): TapEvent {
  const p = peers(rc);
  return {
    time: hrtimeToEpochMs(rc.startedAt),
    node,
    reporter: rc.conn.direction === 'outbound' ? 'source' : 'destination',
    sourceWorkload: p.srcWorkload,
    sourceNamespace: p.srcNs,
    destinationWorkload: p.dstWorkload,
    destinationNamespace: p.dstNs,
    destinationService: p.service,
    method: t.method,
    authority: t.authority.slice(0, 256),
    path: t.path.slice(0, 512),
    status: r.status,
    grpcStatus: r.grpcStatus,
    flags: rc.flags.length === 0 ? '-' : rc.flags.join(','),
    route: rc.route?.name ?? null,
    cluster: rc.cluster?.name ?? null,
    endpoint: rc.target ? `${rc.target.ip}:${rc.target.port}` : null,
    latencyMs: Math.round(r.durationMs * 1000) / 1000,
    mtls: p.mtls,
    requestId: rc.id,
    traceId: t.traceId || null,
    traceKept: kept,
  };
}
