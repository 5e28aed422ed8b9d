// Which DestinationRule applies to which Service port, the agent's ClusterPolicy that follows (with the
// Service's own retry budget), the hash policy its routes carry, and every DestinationRule's status.
//
// A host names Services by FQDN (`reviews.shop.svc.cluster.local`), by short name (`reviews`: the rule's own
// namespace), or by wildcard (`*.shop.svc.cluster.local`, `*`). Of several rules for one Service, the most
// specific host wins (exact, then the longest wildcard), then a rule in the Service's own namespace, then the
// oldest; the others are reported as shadowed there. A Service's clusters are shared by every client, so one
// rule applies to all of them (exportTo other than "*" is refused at validation). A rule whose host matches no
// Service is reported (status, a warning, a gauge), never dropped silently.

import type { RoutePolicy } from '../../state/routes';
import type { ClusterPolicy } from '../../state/services';
import type { ServiceModel } from '../model';
import type { ObjectOrigin, StoredObject } from '../objects';
import type { DestinationRuleObject, FaultInjectionObject, TrafficPolicy } from './traffic-objects';

/** What one Service port's cluster carries. */
export interface ClusterTraffic {
  /** For the agent (state/services.ts); undefined: every default (LEAST_REQUEST, no limits, default budget). */
  policy?: ClusterPolicy;
  connectTimeoutMs?: number;
  /** consistentHash: what routes to this cluster hash on (Envoy hash_policy). */
  hash?: NonNullable<RoutePolicy['hash']>;
  /** `DestinationRule/ns/name` that set the policy. */
  source?: string;
}

export interface DestinationRuleStatus {
  key: string;
  namespace: string;
  name: string;
  host: string;
  origin: { file: string; line: number };
  /** `ns/name:port` of every Service port it applies to. */
  appliesTo: string[];
  /** Set when it applies to nothing: why (no Service has the host, or others win everywhere). */
  unmatched?: string;
  /** Other things worth knowing (subsets that nothing can name, Services where another rule wins). */
  notes: string[];
}

export interface TrafficModel {
  /** By cluster name (Service ports only). */
  clusters: Map<string, ClusterTraffic>;
  destinationRules: DestinationRuleStatus[];
}

export interface StoredDestinationRule {
  object: DestinationRuleObject;
  origin: ObjectOrigin;
}

export function storedDestinationRules(store: { list(kind: 'DestinationRule'): StoredObject[] }): StoredDestinationRule[] {
  return store.list('DestinationRule').map((s) => ({ object: s.object as DestinationRuleObject, origin: s.origin }));
}

/** How well `host` (as written in `namespace`) names `svc`: higher is more specific; -1 when it does not. */
export function hostScore(host: string, namespace: string, svc: ServiceModel, domain: string): number {
  if (!host.includes('.') && host !== '*') return `${host}.${namespace}.svc.${domain}` === svc.host ? 1_000_000 : -1;
  if (host === svc.host) return 1_000_000;
  if (host === '*') return 0;
  if (host.startsWith('*.') && svc.host.endsWith(host.slice(1))) return host.length;
  return -1;
}

/** The rule's policy for one port: each group a portLevelSettings entry sets replaces the rule's (Istio's merge). */
export function policyForPort(dr: DestinationRuleObject, port: number): TrafficPolicy {
  const pl = dr.portLevel.find((p) => p.port === port)?.policy;
  if (!pl) return dr.trafficPolicy;
  return {
    ...dr.trafficPolicy,
    ...(pl.loadBalancer ? { loadBalancer: pl.loadBalancer } : {}),
    ...(pl.connectionPool ? { connectionPool: pl.connectionPool } : {}),
    ...(pl.outlierDetection ? { outlierDetection: pl.outlierDetection } : {}),
  };
}

function clusterTraffic(tp: TrafficPolicy | undefined, budget: ServiceModel['retryBudget'], source: string | undefined): ClusterTraffic {
  const out: ClusterTraffic = {};
  const policy: ClusterPolicy = {};
  if (tp?.loadBalancer?.lb) policy.lb = tp.loadBalancer.lb;
  if (tp?.loadBalancer?.locality) policy.locality = { enabled: true };
  if (tp?.loadBalancer?.hash) out.hash = tp.loadBalancer.hash;
  if (tp?.connectionPool) {
    const { connectTimeoutMs, ...limits } = tp.connectionPool;
    if (connectTimeoutMs !== undefined) out.connectTimeoutMs = connectTimeoutMs;
    if (Object.keys(limits).length > 0) policy.connectionPool = limits;
  }
  if (tp?.outlierDetection) policy.outlierDetection = tp.outlierDetection;
  if (tp?.retryBudget) policy.retryBudgetConcurrency = tp.retryBudget;
  if (budget) policy.retryBudgetRate = budget;
  if (Object.keys(policy).length > 0) out.policy = policy;
  if (source !== undefined) out.source = source;
  return out;
}

export function buildTrafficModel(services: ServiceModel[], rules: StoredDestinationRule[], domain = 'cluster.local'): TrafficModel {
  const clusters = new Map<string, ClusterTraffic>();
  const status = new Map<string, DestinationRuleStatus>();
  const keyOf = (r: StoredDestinationRule): string => `DestinationRule/${r.object.meta.namespace}/${r.object.meta.name}`;
  for (const r of rules) {
    const notes: string[] = [];
    if (r.object.subsets.length > 0) {
      notes.push(`subsets ${r.object.subsets.join(', ')} have no effect: HTTPRoute backendRefs name Services, not subsets (give each version its own Service)`);
    }
    status.set(keyOf(r), {
      key: keyOf(r),
      namespace: r.object.meta.namespace,
      name: r.object.meta.name,
      host: r.object.host,
      origin: { file: r.origin.file, line: r.origin.line },
      appliesTo: [],
      notes,
    });
  }
  for (const svc of services) {
    // `rules` come oldest first (as the store lists them): a stable sort keeps that for equal ranks.
    const ranked = rules
      .map((r) => ({ r, score: hostScore(r.object.host, r.object.meta.namespace, svc, domain) }))
      .filter((x) => x.score >= 0)
      .sort((a, b) => b.score - a.score || Number(b.r.object.meta.namespace === svc.namespace) - Number(a.r.object.meta.namespace === svc.namespace));
    const winner = ranked[0]?.r;
    for (const loser of ranked.slice(1)) {
      status.get(keyOf(loser.r))!.notes.push(`Service ${svc.namespace}/${svc.name}: ${keyOf(winner!)} applies there (a more specific host, the Service's namespace, or older)`);
    }
    for (const p of svc.ports) {
      const tp = winner ? policyForPort(winner.object, p.port.port) : undefined;
      const ct = clusterTraffic(tp, svc.retryBudget, winner ? keyOf(winner) : undefined);
      if (Object.keys(ct).length > 0) clusters.set(p.clusterName, ct);
      if (winner) status.get(keyOf(winner))!.appliesTo.push(`${svc.namespace}/${svc.name}:${p.port.port}`);
    }
  }
  for (const s of status.values()) {
    if (s.appliesTo.length > 0) continue;
    const shadowed = s.notes.some((n) => n.startsWith('Service '));
    s.unmatched = shadowed
      ? 'every Service its host names takes another DestinationRule'
      : `no Service has the host "${s.host}"${s.host.includes('.') || s.host === '*' ? '' : ` (read as ${s.host}.${s.namespace}.svc.${domain})`}`;
  }
  return { clusters, destinationRules: [...status.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)) };
}

/** Every FaultInjection the store holds, by `namespace/name` (what ExtensionRef filters resolve to). */
export function storedFaults(store: { list(kind: 'FaultInjection'): StoredObject[] }): Map<string, FaultInjectionObject['fault']> {
  return new Map(store.list('FaultInjection').map((s) => [`${s.object.meta.namespace}/${s.object.meta.name}`, (s.object as FaultInjectionObject).fault]));
}

/** What buildRouteModel needs from the traffic objects: FaultInjections and each cluster's hash key. */
export function routeExtras(store: { list(kind: 'FaultInjection'): StoredObject[] }, traffic: TrafficModel): { faults: Map<string, FaultInjectionObject['fault']>; hashOf: (cluster: string) => RoutePolicy['hash'] | undefined } {
  return { faults: storedFaults(store), hashOf: (cluster) => traffic.clusters.get(cluster)?.hash };
}
