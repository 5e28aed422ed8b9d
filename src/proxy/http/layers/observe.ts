// Observe (source agent, right before the forwarder): counts each attempt in flight per cluster and
// endpoint (least-request balancing, breakers), folds its latency into the endpoint's peak EWMA, and runs
// outlier detection on its outcome: consecutive 5xx or gateway errors eject the endpoint for
// baseEjectionTime × its ejection count, never more endpoints at once than maxEjectionPercent allows
// (at least one, as Envoy does, unless the percentage is 0).

import type { ClusterPolicy } from '../../../state/services';
import type { ResilienceMetrics } from '../../../telemetry/resilience-metrics';
import { observeLatency } from '../balancers/peak-ewma';
import type { ClusterState, ClusterStates, EndpointState } from '../cluster-state';
import type { L7Response, Layer, RequestContext } from '../request';

type Outlier = NonNullable<ClusterPolicy['outlierDetection']>;

/** Envoy's gateway errors: 502, 503, 504, and failures to reach the endpoint at all. */
export function isGatewayError(status: number, flags: string[]): boolean {
  return status === 502 || status === 503 || status === 504 || flags.includes('UF') || flags.includes('UC');
}

function eject(cs: ClusterState, es: EndpointState, od: Outlier, total: number, now: number, metrics: ResilienceMetrics): void {
  if (od.maxEjectionPercent <= 0) return;
  let ejected = 0;
  for (const s of cs.endpoints.values()) if (s.ejectedUntil > now) ejected++;
  const allowed = Math.max(1, Math.floor((total * od.maxEjectionPercent) / 100));
  if (ejected >= allowed) return;
  es.ejections++;
  es.ejectedUntil = now + od.baseEjectionMs * es.ejections;
  es.consecutive5xx = 0;
  es.consecutiveGateway = 0;
  metrics.ejections.inc({ cluster: cs.name });
}

export function recordOutcome(cs: ClusterState, es: EndpointState, answer: L7Response, rc: RequestContext, endpoints: number, now: number, metrics: ResilienceMetrics): void {
  const od = cs.policy?.outlierDetection;
  if (!od) return;
  if (answer.status < 500 && !rc.flags.includes('UF') && !rc.flags.includes('UC')) {
    es.consecutive5xx = 0;
    es.consecutiveGateway = 0;
    // Healthy again for a while after an ejection: the next ejection is shorter again.
    if (es.ejections > 0 && es.ejectedUntil > 0 && now > es.ejectedUntil + od.intervalMs) {
      es.ejections--;
      es.ejectedUntil = es.ejections > 0 ? now : 0;
    }
    return;
  }
  es.consecutive5xx++;
  if (isGatewayError(answer.status, rc.flags)) es.consecutiveGateway++;
  else es.consecutiveGateway = 0;
  const by5xx = od.consecutive5xxErrors !== undefined && od.consecutive5xxErrors > 0 && es.consecutive5xx >= od.consecutive5xxErrors;
  const byGateway = od.consecutiveGatewayErrors !== undefined && od.consecutiveGatewayErrors > 0 && es.consecutiveGateway >= od.consecutiveGatewayErrors;
  if (by5xx || byGateway) eject(cs, es, od, endpoints, now, metrics);
}

export function observeLayer(o: { states: ClusterStates; metrics: ResilienceMetrics; endpointsOf(cluster: string): readonly unknown[]; now?: () => number }): Layer {
  const now = o.now ?? Date.now;
  return (next) => async (req, rc) => {
    const c = rc.cluster;
    const ep = rc.endpoint;
    if (c === null || ep === null) return next(req, rc);
    const cs = o.states.get(c.name, c.policy);
    const es = cs.endpoint(ep);
    cs.active++;
    es.active++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      cs.active--;
      es.active--;
    };
    rc.releaseAttempt = release;
    rc.done.push(release);
    const t0 = now();
    const answer = await next(req, rc);
    const t1 = now();
    observeLatency(es, t1 - t0, t1);
    recordOutcome(cs, es, answer, rc, o.endpointsOf(c.name).length, t1, o.metrics);
    return answer;
  };
}
