// Mirroring (source agent, after the router): each of the route's mirrors gets a copy of its share of
// requests, fire and forget. The copy goes to the mirror's cluster (authority suffixed `-shadow`, as Envoy
// does) once the request body is complete and small enough to copy; its answer is read and dropped, and
// nothing about it (latency, failure) reaches the client's request. Counted per mirror cluster.

import type { ServiceStore } from '../../../state/services';
import type { ResilienceMetrics } from '../../../telemetry/resilience-metrics';
import { newRequestContext } from '../exchange';
import { replayable } from '../replay';
import type { BodySink, Handler, Headers, L7Request, Layer, RequestContext } from '../request';

function drain(send: Promise<{ status: number; body: unknown }>): Promise<number> {
  return send.then(
    (a) =>
      new Promise<number>((resolve) => {
        const body = a.body as { pipe?: (s: BodySink) => void } | null;
        if (body === null || Buffer.isBuffer(body) || typeof body.pipe !== 'function') return resolve(a.status);
        body.pipe({ write: () => true, end: () => resolve(a.status), fail: () => resolve(0) });
      }),
    () => 0,
  );
}

export function mirrorLayer(o: { services: ServiceStore; metrics: ResilienceMetrics; send: Handler; random?: () => number }): Layer {
  const random = o.random ?? Math.random;
  return (next) => (req, rc) => {
    const mirrors = rc.route?.policy?.mirrors;
    if (!mirrors || mirrors.length === 0 || req.upgrade) return next(req, rc);
    const chosen = mirrors.filter((m) => random() < m.fraction);
    if (chosen.length > 0) {
      const replay = replayable(req);
      const headers: Headers = { ...req.headers };
      void replay.whenComplete().then((ok) => {
        for (const m of chosen) {
          const cluster = o.services.cluster(m.cluster);
          if (!ok || !cluster) {
            o.metrics.mirrors.inc({ cluster: m.cluster, outcome: 'skipped' });
            continue;
          }
          const copy: L7Request = { ...req, headers: { ...headers }, authority: shadow(req.authority), body: replay.body() };
          const mrc: RequestContext = newRequestContext(rc.conn, copy.headers);
          mrc.cluster = cluster;
          mrc.route = rc.route;
          void drain(o.send(copy, mrc)).then((status) => {
            o.metrics.mirrors.inc({ cluster: m.cluster, outcome: status >= 200 && status < 500 ? 'ok' : 'failed' });
            for (const fn of mrc.done) fn({ status, requestBytes: 0, responseBytes: 0, grpcStatus: null, downstreamReset: false, durationMs: 0 });
          });
        }
      });
    }
    return next(req, rc);
  };
}

function shadow(authority: string): string {
  const c = authority.lastIndexOf(':');
  if (c > 0 && !authority.endsWith(']')) return `${authority.slice(0, c)}-shadow${authority.slice(c)}`;
  return `${authority}-shadow`;
}
