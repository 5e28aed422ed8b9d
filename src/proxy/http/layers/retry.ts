// Retries (source agent, after the timeout layer, so the route timeout covers every attempt): an attempt
// whose outcome the policy calls retriable is discarded and made again, on a different endpoint when one
// exists (balance honours rc.previousHosts), after a jittered backoff, each with its own per-try timeout.
//
// Only what can be replayed is retried: a body of at most 64 KiB that has ended (a streaming request is
// never retried). Retries never become a storm: the rate budget lets retries add at most `ratio` of the
// cluster's requests (plus `minPerSecond`) over a window, even for a sequential client (Linkerd's model;
// default 20 %, 10/s, 10 s); Envoy's concurrency budget and maxRetries bound retries in flight on top.
//
// Without a route policy, Istio's defaults apply: 2 retries on connect failure, refused stream, gRPC
// UNAVAILABLE/CANCELLED and 503.

import { DEFAULT_ROUTE_RETRY, type RoutePolicy } from '../../../state/routes';
import type { ClusterPolicy } from '../../../state/services';
import type { ResilienceMetrics } from '../../../telemetry/resilience-metrics';
import type { ClusterStates } from '../cluster-state';
import { ATTEMPT_HEADER, headerValue } from '../headers';
import { replayable } from '../replay';
import { localReply, type L7Response, type Layer, type RequestContext } from '../request';

export interface RetryPolicy {
  retries: number;
  /** Envoy retry_on conditions. */
  on: Set<string>;
  codes: Set<number>;
  baseMs: number;
  maxMs: number;
  perTryMs: number | null;
}

export const ISTIO_DEFAULT_RETRY: RetryPolicy = {
  retries: DEFAULT_ROUTE_RETRY.attempts,
  on: new Set(DEFAULT_ROUTE_RETRY.on),
  codes: new Set(DEFAULT_ROUTE_RETRY.codes),
  baseMs: 25,
  maxMs: 250,
  perTryMs: null,
};

export const DEFAULT_RATE_BUDGET: NonNullable<ClusterPolicy['retryBudgetRate']> = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 };

/** gRPC status names Envoy's retry_on uses, by code. */
const GRPC_ON: Record<string, string> = { '1': 'cancelled', '4': 'deadline-exceeded', '8': 'resource-exhausted', '13': 'internal', '14': 'unavailable' };

export function retryPolicyOf(rc: RequestContext): RetryPolicy {
  return retryPolicyFor(rc.route?.policy);
}

/** The retries a route's policy amounts to, defaults filled in (also what /config_dump shows). */
export function retryPolicyFor(p: RoutePolicy | undefined): RetryPolicy {
  const perTry = p?.perTryTimeoutMs !== undefined && p.perTryTimeoutMs > 0 ? p.perTryTimeoutMs : null;
  const r = p?.retry;
  if (!r) return perTry === null ? ISTIO_DEFAULT_RETRY : { ...ISTIO_DEFAULT_RETRY, perTryMs: perTry };
  const on = new Set(r.on);
  if (r.codes.length > 0) on.add('retriable-status-codes');
  return {
    retries: Math.max(0, r.attempts),
    on,
    codes: new Set(r.codes),
    baseMs: r.backoffBaseMs ?? 25,
    maxMs: r.backoffMaxMs ?? Math.max(250, (r.backoffBaseMs ?? 25) * 10),
    perTryMs: perTry,
  };
}

/** Why this attempt may be retried under `p`, or null. */
export function retriable(a: L7Response, p: RetryPolicy): string | null {
  if (a.failure === 'connect' && (p.on.has('connect-failure') || p.on.has('reset') || p.on.has('5xx') || p.on.has('gateway-error'))) return 'connect-failure';
  if (a.failure === 'refused' && (p.on.has('refused-stream') || p.on.has('reset'))) return 'refused-stream';
  if (a.failure === 'reset' && (p.on.has('reset') || p.on.has('5xx') || p.on.has('gateway-error'))) return 'reset';
  if (a.failure === 'timeout' && (p.on.has('reset') || p.on.has('5xx') || p.on.has('gateway-error') || p.codes.has(504))) return 'per-try-timeout';
  // Anything else the agent answered itself (overflow, no endpoint, a fault) is not retried: not now.
  // A peer agent's answer for a failure at its end (peer-failure.ts) is still a 503 the codes may list.
  if (a.local) return null;
  if (p.on.has('retriable-status-codes') && p.codes.has(a.status)) return `status-${a.status}`;
  if (p.on.has('5xx') && a.status >= 500) return `status-${a.status}`;
  if (p.on.has('gateway-error') && a.status >= 502 && a.status <= 504) return `status-${a.status}`;
  // A gRPC status is visible here only in a trailers-only answer (a failure before any message).
  const g = headerValue(a.headers, 'grpc-status') ?? headerValue(a.trailers ?? {}, 'grpc-status');
  if (g !== undefined && GRPC_ON[g] !== undefined && p.on.has(GRPC_ON[g]!)) return `grpc-${GRPC_ON[g]}`;
  return null;
}

function discard(a: L7Response): void {
  if (a.body !== null && !Buffer.isBuffer(a.body)) a.body.abort(new Error('retried'));
}

/** One attempt, bounded by the per-try timeout (a timed-out attempt is cancelled and reads as failure 'timeout'). */
function attempt(next: Parameters<Layer>[0], req: Parameters<ReturnType<Layer>>[0], rc: RequestContext, perTryMs: number | null): Promise<L7Response> {
  if (perTryMs === null) return next(req, rc);
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      const f = rc.onAbort;
      rc.onAbort = null;
      if (f) f();
      resolve({ ...localReply(rc, 504, `upstream request timeout: the attempt took over ${perTryMs} ms`, 'UT'), failure: 'timeout' });
    }, perTryMs);
    next(req, rc).then((a) => {
      clearTimeout(timer);
      if (done) discard(a);
      else {
        done = true;
        resolve(a);
      }
    });
  });
}

const ATTEMPT_FLAGS = ['UF', 'UC', 'UH', 'UT', 'UO'];

export function retryLayer(o: { states: ClusterStates; metrics: ResilienceMetrics; now?: () => number; random?: () => number }): Layer {
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  return (next) => async (req, rc) => {
    const p = retryPolicyOf(rc);
    const cluster = rc.cluster;
    if (cluster === null || p.retries === 0 || req.upgrade) {
      if (cluster !== null) req.headers[ATTEMPT_HEADER] = '1';
      if (req.upgrade) return attempt(next, req, rc, p.perTryMs);
      return repeatOnceIfSafe(next, req, rc, p.perTryMs);
    }
    const cs = o.states.get(cluster.name, cluster.policy);
    cs.requests.add(now());
    const replay = replayable(req);
    for (let n = 0; ; n++) {
      req.headers[ATTEMPT_HEADER] = String(n + 1);
      const a = await attempt(next, req, rc, p.perTryMs);
      const reason = retriable(a, p);
      if (reason === null || rc.aborted) return a;
      if (n >= p.retries) {
        rc.flags.push('URX');
        return a;
      }
      if (!replay.complete) return a;
      const budget = spentBudget(cs, cluster.policy, now());
      if (budget !== null) {
        o.metrics.retryBudgetExhausted.inc({ cluster: cluster.name, budget });
        rc.detail = `${rc.detail ?? ''} (not retried: the ${budget} retry budget is spent)`.trim();
        return a;
      }
      discard(a);
      rc.releaseAttempt?.();
      if (rc.target) rc.previousHosts.push(`${rc.target.ip}:${rc.target.port}`);
      rc.flags = rc.flags.filter((f) => !ATTEMPT_FLAGS.includes(f));
      rc.detail = null;
      o.metrics.retries.inc({ cluster: cluster.name, reason });
      cs.retries.add(now());
      cs.activeRetries++;
      rc.done.push(() => cs.activeRetries--);
      // Full jitter on an exponential backoff: retries of many clients do not line up.
      const cap = Math.min(p.maxMs, p.baseMs * 2 ** n);
      await new Promise((r) => setTimeout(r, p.baseMs >= p.maxMs ? p.baseMs : p.baseMs + random() * (cap - p.baseMs)));
      if (rc.aborted) return a;
      req.body = replay.body();
    }
  };
}

/** RFC 9110 §9.2.2: requests a client may repeat by itself when the connection failed before an answer. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Without a retry policy (no route: a pod IP; or retries set to 0) a request is still repeated once where
 * that cannot do harm: its connection failed (the request never left), or, for an idempotent method, the
 * upstream reset a connection before any answer. The second is the keep-alive race with a server closing an
 * idle connection (the destination's agent draining, an application's idle timeout), which a browser or undici
 * also repeats.
 */
async function repeatOnceIfSafe(next: Parameters<Layer>[0], req: Parameters<ReturnType<Layer>>[0], rc: RequestContext, perTryMs: number | null): Promise<L7Response> {
  const replay = req.body === null || Buffer.isBuffer(req.body) ? null : replayable(req);
  const a = await attempt(next, req, rc, perTryMs);
  const safe = a.failure === 'connect' || (a.failure === 'reset' && IDEMPOTENT.has(req.method));
  if (!safe || rc.aborted || (replay !== null && !replay.complete)) return a;
  discard(a);
  rc.releaseAttempt?.();
  rc.flags = rc.flags.filter((f) => !ATTEMPT_FLAGS.includes(f));
  rc.detail = null;
  if (replay !== null) req.body = replay.body();
  return attempt(next, req, rc, perTryMs);
}

/** The first budget that forbids one more retry now, or null. */
function spentBudget(cs: ReturnType<ClusterStates['get']>, policy: ClusterPolicy | undefined, t: number): string | null {
  const maxRetries = policy?.connectionPool?.maxRetries;
  if (maxRetries !== undefined && cs.activeRetries >= maxRetries) return 'max_retries';
  const cb = policy?.retryBudgetConcurrency;
  if (cb && cs.activeRetries >= Math.max(cb.minRetryConcurrency, (cb.percent / 100) * cs.active)) return 'concurrency';
  const rb = policy?.retryBudgetRate ?? DEFAULT_RATE_BUDGET;
  const windowS = Math.max(1, Math.round(rb.ttlMs / 1000));
  if (cs.retries.sum(t) >= rb.minPerSecond * windowS + rb.ratio * cs.requests.sum(t)) return 'rate';
  return null;
}
