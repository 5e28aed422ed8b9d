// Circuit breaking (source agent, per attempt, before balancing): the cluster's connection-pool limits
// (Istio DestinationRule connectionPool). Over a limit, the request is not queued without bound: it is
// answered 503 with response flag UO at once, and counted. Unset limits are unlimited, as in Istio.
//
// http2MaxRequests caps requests in flight to the cluster (HTTP/1.1 and HTTP/2 alike, as Istio documents);
// for HTTP/1.1, maxConnections connections carry one request each, and http1MaxPendingRequests more may
// wait for one. maxConnections itself is enforced by the pools (they open no more).

import type { ResilienceMetrics } from '../../../telemetry/resilience-metrics';
import type { ClusterStates } from '../cluster-state';
import { localReply, type Layer } from '../request';
import { upstreamVersion } from './balance';

export function breakerLayer(o: { states: ClusterStates; metrics: ResilienceMetrics }): Layer {
  return (next) => (req, rc) => {
    const c = rc.cluster;
    const cp = c?.policy?.connectionPool;
    if (!c || !cp) return next(req, rc);
    const cs = o.states.get(c.name, c.policy);
    const overflow = (limit: string, detail: string): ReturnType<typeof next> => {
      o.metrics.overflow.inc({ cluster: c.name, limit });
      return Promise.resolve(localReply(rc, 503, `upstream overflow: ${detail} for ${c.host}`, 'UO'));
    };
    if (cp.http2MaxRequests !== undefined && cs.active >= cp.http2MaxRequests) return overflow('max_requests', `${cs.active} requests in flight (http2MaxRequests ${cp.http2MaxRequests})`);
    if (upstreamVersion(c.protocol, req.version) === 'http1' && cp.maxConnections !== undefined) {
      const waiting = cs.active - cp.maxConnections;
      if (waiting >= (cp.http1MaxPendingRequests ?? Infinity)) {
        return overflow('max_pending_requests', `${cp.maxConnections} connections busy and ${Math.max(0, waiting)} requests waiting (http1MaxPendingRequests ${cp.http1MaxPendingRequests})`);
      }
    }
    return next(req, rc);
  };
}
