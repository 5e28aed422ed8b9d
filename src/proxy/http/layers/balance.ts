// Balance (source agent): picks the endpoint of the request's cluster, per request, and how to reach it
// (HBONE to a mesh pod, plain TCP otherwise) and in which HTTP version. Without a cluster (a pod IP called
// directly) the target is the original destination.
//
// The choice of endpoint is a `Picker` so load-balancing policies plug in per cluster; round robin is the
// default until the resilience layers bring the others.

import type { EndpointInfo, ServiceStore } from '../../../state/services';
import type { HttpVersion, PortProtocol } from '../../../state/routes';
import type { WorkloadStore } from '../../../state/workloads';
import type { MeshContext } from '../../context';
import type { Target } from '../../forward';
import { localReply, type Layer, type RequestContext } from '../request';

/** Picks one of `endpoints` for this request; null when none may take it. */
export type Picker = (endpoints: readonly EndpointInfo[], rc: RequestContext) => EndpointInfo | null;

/** Per-cluster round robin: state kept by cluster name, reset when the endpoint list is replaced. */
export function roundRobin(): Picker {
  const next = new WeakMap<readonly EndpointInfo[], number>();
  return (eps) => {
    if (eps.length === 0) return null;
    const i = next.get(eps) ?? Math.floor(Math.random() * eps.length);
    next.set(eps, (i + 1) % eps.length);
    return eps[i % eps.length]!;
  };
}

/** What the upstream speaks: declared by the port, else what the client speaks. */
export function upstreamVersion(protocol: PortProtocol | undefined, downstream: HttpVersion): HttpVersion {
  if (protocol === 'http2' || protocol === 'grpc') return 'http2';
  if (protocol === 'http') return 'http1';
  return downstream;
}

export interface BalanceOptions {
  services: ServiceStore;
  workloads: WorkloadStore;
  mesh: MeshContext | null;
  picker?: Picker;
}

/** Mesh destinations (enrolled here, or in the mesh per the control plane, identity known) go over HBONE. */
export function targetOf(o: BalanceOptions, ip: string, port: number, ep?: EndpointInfo): { target: Target; endpoint: EndpointInfo | null } {
  const local = o.workloads.findByIp(ip);
  const meta = ep ?? o.services.findWorkload(ip) ?? null;
  const inMesh = local !== undefined || meta?.inMesh === true;
  const sa = local?.serviceAccount ?? meta?.serviceAccount;
  const ns = local?.namespace ?? meta?.namespace;
  const endpoint: EndpointInfo | null = meta ?? (local ? { ip, port, pod: local.name, namespace: local.namespace, serviceAccount: local.serviceAccount, inMesh: true } : null);
  if (o.mesh && inMesh && sa && ns) {
    return { target: { ip, port, via: 'hbone', peerId: o.mesh.spiffeIdOf({ namespace: ns, serviceAccount: sa }) }, endpoint };
  }
  return { target: { ip, port, via: 'tcp' }, endpoint };
}

export function balanceLayer(o: BalanceOptions): Layer {
  const pick = o.picker ?? roundRobin();
  return (next) => (req, rc) => {
    if (rc.cluster === null) {
      // A pod IP called directly: no choice to make.
      const dst = rc.conn.dst;
      const t = targetOf(o, dst.ip, dst.port);
      rc.target = t.target;
      rc.endpoint = t.endpoint;
      rc.upstreamVersion = upstreamVersion(rc.conn.protocol, req.version);
      return next(req, rc);
    }
    const ep = pick(o.services.endpointsOf(rc.cluster.name), rc);
    if (ep === null) return Promise.resolve(localReply(rc, 503, `no healthy upstream for ${rc.cluster.host}`, 'UH'));
    const t = targetOf(o, ep.ip, ep.port, ep);
    rc.target = t.target;
    rc.endpoint = t.endpoint;
    rc.upstreamVersion = upstreamVersion(rc.cluster.protocol, req.version);
    return next(req, rc);
  };
}
