// Timeout (source agent, after the router): the route's whole-exchange timeout (Gateway API
// `timeouts.request`, retries included) and a gRPC client's `grpc-timeout`, whichever ends first. Before
// the response head: 504 (gRPC: DEADLINE_EXCEEDED), flag UT, the upstream attempt cancelled. After it: the
// response is cut (reset), flag UT. The upstream is told the remaining gRPC budget.

import { headerValue } from '../headers';
import { GrpcStatus, localReply, type L7Response, type Layer } from '../request';

const GRPC_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit); null when absent or malformed. */
export function parseGrpcTimeout(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  return m ? Number(m[1]) * GRPC_UNITS[m[2]!]! : null;
}

/** The largest TimeoutValue gRPC allows: 8 digits. */
const GRPC_MAX_VALUE = 99_999_999;

/**
 * Milliseconds as a `grpc-timeout` value: whole milliseconds (at least 1), or the finest coarser unit whose
 * value fits gRPC's 8 digits (rounded up, so the upstream never gets less time than is left).
 */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  if (whole <= GRPC_MAX_VALUE) return `${whole}m`;
  for (const unit of ['S', 'M', 'H'] as const) {
    const v = Math.ceil(whole / GRPC_UNITS[unit]!);
    if (v <= GRPC_MAX_VALUE) return `${v}${unit}`;
  }
  return `${GRPC_MAX_VALUE}H`;
}

export function timeoutLayer(): Layer {
  return (next) => (req, rc) => {
    const routeMs = rc.route?.policy?.timeoutMs;
    const grpcMs = rc.grpc ? parseGrpcTimeout(headerValue(req.headers, 'grpc-timeout')) : null;
    let ms: number | null = routeMs !== undefined && routeMs > 0 ? routeMs : null;
    if (grpcMs !== null) ms = ms === null ? grpcMs : Math.min(ms, grpcMs);
    if (ms === null) return next(req, rc);
    if (grpcMs !== null) req.headers['grpc-timeout'] = formatGrpcTimeout(ms);
    const byGrpc = grpcMs !== null && grpcMs <= (routeMs ?? Infinity);
    return new Promise<L7Response>((resolve) => {
      let answered: L7Response | null = null;
      const timer = setTimeout(() => {
        rc.flags.push('UT');
        rc.detail = byGrpc ? `the gRPC deadline (${ms} ms) passed` : `route timeout (${ms} ms) passed`;
        if (answered === null) {
          const f = rc.onAbort;
          rc.onAbort = null;
          if (f) f();
          const reply = localReply(rc, 504, rc.detail);
          if (rc.grpc) reply.trailers = { 'grpc-status': String(GrpcStatus.DEADLINE_EXCEEDED), 'grpc-message': encodeURIComponent(rc.detail) };
          resolve(reply);
        } else if (answered.body !== null && !Buffer.isBuffer(answered.body)) {
          answered.body.abort(new Error(rc.detail));
        }
      }, ms);
      rc.done.push(() => clearTimeout(timer));
      next(req, rc).then((a) => {
        if (rc.flags.includes('UT') && answered === null) {
          // Too late: the client got its 504; this answer's body is not wanted.
          if (a.body !== null && !Buffer.isBuffer(a.body)) a.body.abort(new Error('timed out'));
          return;
        }
        answered = a;
        if (a.body === null || Buffer.isBuffer(a.body)) clearTimeout(timer);
        resolve(a);
      });
    });
  };
}
