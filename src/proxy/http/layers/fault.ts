// Fault injection (source agent, after the router): the route's delay and abort (nodemesh's FaultInjection
// extension, delivered as Envoy's HTTP fault filter config), each applied to its share of requests. An
// abort answers the given HTTP status (or gRPC status) with response flag FI; a delay holds the request
// (flag DI) and then lets it through.

import type { ResilienceMetrics } from '../../../telemetry/resilience-metrics';
import { localReply, type L7Response, type Layer } from '../request';

export function faultLayer(o: { metrics: ResilienceMetrics; random?: () => number }): Layer {
  const random = o.random ?? Math.random;
  return (next) => async (req, rc) => {
    const f = rc.route?.policy?.fault;
    if (!f) return next(req, rc);
    const route = rc.route!.name;
    if (f.delay && random() < f.delay.fraction) {
      o.metrics.faults.inc({ route, kind: 'delay' });
      rc.flags.push('DI');
      await new Promise((r) => setTimeout(r, f.delay!.ms));
      if (rc.aborted) return localReply(rc, 499, 'the client went away during an injected delay');
    }
    if (f.abort && random() < f.abort.fraction) {
      o.metrics.faults.inc({ route, kind: 'abort' });
      if (req.body !== null && !Buffer.isBuffer(req.body)) req.body.resume();
      const a: L7Response = localReply(rc, f.abort.httpStatus ?? 500, `fault injected by route ${route}`, 'FI');
      if (rc.grpc && f.abort.grpcStatus !== undefined) a.trailers = { 'grpc-status': String(f.abort.grpcStatus), 'grpc-message': encodeURIComponent(`fault injected by route ${route}`) };
      return a;
    }
    return next(req, rc);
  };
}
