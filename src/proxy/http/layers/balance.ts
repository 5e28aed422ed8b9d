// Balance (source agent): picks the endpoint of the request's cluster for this attempt, per request (not per
// connection), and how to reach it (HBONE to a mesh pod, plain TCP otherwise) and in which HTTP version.
// Before the cluster's policy picks (balancers/), the candidates are narrowed: ejected endpoints out
// (outlier detection; all of them back when too few are left), same node then same zone first (locality),
// and the hosts of the request's earlier attempts out when others remain (Envoy's previous-hosts rule).
// Without a cluster (a pod IP called directly) the target is the original destination.

import type { ClusterInfo, EndpointInfo, ServiceStore } from '../../../state/services';
import type { HttpVersion, PortProtocol } from '../../../state/routes';
import type { WorkloadStore } from '../../../state/workloads';
import type { MeshContext } from '../../context';
import type { Target } from '../../forward';
import { pickerFor, type PickContext, type Picker } from '../balancers';
import type { ClusterStates } from '../cluster-state';
import { requestHash } from '../hash-policy';
import { localReply, type Layer, type RequestContext } from '../request';

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
  states: ClusterStates;
  /** Where this agent runs, for locality-aware balancing. */
  locality: { node: string; zone?: string };
  random?: () => number;
  now?: () => number;
}

/** Mesh destinations (enrolled here, or in the mesh per the control plane, identity known) go over HBONE. */
export function targetOf(o: Pick<BalanceOptions, 'services' | 'workloads' | 'mesh'>, ip: string, port: number, ep?: EndpointInfo): { target: Target; endpoint: EndpointInfo | null } {
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

/** Outlier detection's view: ejected endpoints out, unless that leaves fewer healthy than the policy allows. */
function healthy(o: BalanceOptions, cluster: ClusterInfo, eps: readonly EndpointInfo[], now: number): readonly EndpointInfo[] {
  const od = cluster.policy?.outlierDetection;
  if (!od) return eps;
  const cs = o.states.get(cluster.name, cluster.policy);
  const ok = eps.filter((e) => cs.endpoint(e).ejectedUntil <= now);
  if (ok.length === eps.length) return eps;
  // Istio minHealthPercent: below it, outlier detection stands aside and every endpoint takes traffic.
  if (ok.length === 0 || (od.minHealthPercent !== undefined && (ok.length * 100) / eps.length < od.minHealthPercent)) return eps;
  return ok;
}

function local(o: BalanceOptions, eps: readonly EndpointInfo[]): readonly EndpointInfo[] {
  const node = eps.filter((e) => e.node === o.locality.node);
  if (node.length > 0) return node;
  if (o.locality.zone === undefined) return eps;
  const zone = eps.filter((e) => e.zone === o.locality.zone);
  return zone.length > 0 ? zone : eps;
}

export function balanceLayer(o: BalanceOptions): Layer {
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const pickers = new Map<string, { lb: unknown; pick: Picker }>();
  const pickerOf = (c: ClusterInfo): Picker => {
    const cur = pickers.get(c.name);
    if (cur && cur.lb === c.policy?.lb) return cur.pick;
    const pick = pickerFor(c.policy?.lb);
    pickers.set(c.name, { lb: c.policy?.lb, pick });
    return pick;
  };
  const direct = (rc: RequestContext, version: HttpVersion): void => {
    const dst = rc.conn.dst;
    const t = targetOf(o, dst.ip, dst.port);
    rc.target = t.target;
    rc.endpoint = t.endpoint;
    rc.upstreamVersion = upstreamVersion(rc.conn.protocol, version);
  };
  return (next) => async (req, rc) => {
    const cluster = rc.cluster;
    if (cluster === null) {
      // A pod IP called directly: no choice to make.
      direct(rc, req.version);
      return next(req, rc);
    }
    const all = o.services.endpointsOf(cluster.name);
    if (all.length === 0) return localReply(rc, 503, `no healthy upstream for ${cluster.host}: the Service has no ready endpoints`, 'UH');
    const t = now();
    let candidates = healthy(o, cluster, all, t);
    if (cluster.policy?.locality?.enabled) candidates = local(o, candidates);
    if (rc.previousHosts.length > 0) {
      const fresh = candidates.filter((e) => !rc.previousHosts.includes(`${e.ip}:${e.port}`));
      if (fresh.length > 0) candidates = fresh;
    }
    const cs = o.states.get(cluster.name, cluster.policy);
    const h = requestHash(rc.route?.policy?.hash, req, rc);
    const ctx: PickContext = { state: (e) => cs.endpoint(e), hash: h.hash, random, now };
    const ep = pickerOf(cluster)(candidates, ctx);
    const tgt = targetOf(o, ep.ip, ep.port, ep);
    rc.target = tgt.target;
    rc.endpoint = tgt.endpoint;
    rc.upstreamVersion = upstreamVersion(cluster.protocol, req.version);
    const answer = await next(req, rc);
    if (h.setCookie !== null) {
      const cur = answer.headers['set-cookie'];
      answer.headers['set-cookie'] = cur === undefined ? h.setCookie : [...(Array.isArray(cur) ? cur : [cur]), h.setCookie];
    }
    return answer;
  };
}
