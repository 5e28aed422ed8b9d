// CDS on the agent, the traffic-policy part of a Cluster: load balancing (load_balancing_policy, else
// lb_policy), locality, circuit_breakers (with retry_budget), outlier_detection, the HTTP protocol options the
// pools honour, and nodemesh's rate budget from filter_metadata.nodemesh.retryBudget, into ClusterPolicy
// (state/services.ts). The shapes are controlplane/traffic/cluster-fields.ts's; what the layers cannot honour
// is refused by name (a NACK says what to remove). Equal policies come out as one frozen object (canonical), so
// 10,000 clusters with the default policy hold one policy, not 10,000 copies of it.

import type { ClusterPolicy, LoadBalancing } from '../state/services';
import { Canon } from './canon';
import { decodeTyped, durationMs, list, refuse, XdsResourceError, type Any, type Msg } from './decode-util';
import {
  HTTP_PROTOCOL_OPTIONS_TYPE,
  LB_LEAST_REQUEST_TYPE,
  LB_MAGLEV_TYPE,
  LB_PEAK_EWMA_TYPE_URL,
  LB_RANDOM_TYPE,
  LB_RING_HASH_TYPE,
  LB_ROUND_ROBIN_TYPE,
  TYPE_URL_PREFIX,
  TYPED_STRUCT_TYPE,
} from './resource-types';

/** Istio's "unlimited" (what an unset limit is written as): read back as no limit. */
const UNLIMITED = 4_294_967_295;

type Pick = { lb: LoadBalancing; locality?: boolean };

/** The balancers without parameters, one frozen object each (what a decoded policy's `lb` points to). */
const LB: { readonly [K in 'least_request' | 'round_robin' | 'random' | 'peak_ewma']: LoadBalancing } = {
  least_request: Object.freeze({ kind: 'least_request' }),
  round_robin: Object.freeze({ kind: 'round_robin' }),
  random: Object.freeze({ kind: 'random' }),
  peak_ewma: Object.freeze({ kind: 'peak_ewma' }),
};

/** What a Cluster with no traffic-policy fields gets (nearly every one): shared by all of them. */
export const DEFAULT_CLUSTER_POLICY: ClusterPolicy = Object.freeze({ lb: LB.round_robin });

/** Most distinct non-default policies kept for sharing; past it the table starts over (memory stays bounded). */
const CANONICAL_MAX = 4096;
const canonical = new Canon(CANONICAL_MAX, Number.POSITIVE_INFINITY);

/**
 * The one frozen instance of `p`'s value. Policies are built in a fixed field order (decodeClusterPolicy), so
 * equal policies serialize alike. Identity then also tells the proxy's per-cluster state (ClusterStates.get)
 * that a pushed cluster's policy did not change.
 */
function canonicalPolicy(p: ClusterPolicy): ClusterPolicy {
  if (p.lb === LB.round_robin && Object.keys(p).length === 1) return DEFAULT_CLUSTER_POLICY;
  return canonical.share('policy', p);
}

/** A LocalityLbConfig: zone-aware means the client's own locality first (what the agent does); weighting it does not do. */
function locality(where: string, l: unknown): boolean | undefined {
  if (!l) return undefined;
  const m = l as Msg;
  if (m.locality_weighted_lb_config) throw new XdsResourceError(`${where}: locality_weighted_lb_config is not supported (the agent prefers its own node, then zone: use zone_aware_lb_config)`);
  return m.zone_aware_lb_config ? true : undefined;
}

/** One typed policy, or null when the agent does not know it (the next in the list is tried, as Envoy does). */
function typedPolicy(where: string, any: Any): Pick | null {
  const type = any.type_url.slice(TYPE_URL_PREFIX.length);
  const at = `${where} ${type}`;
  switch (type) {
    case LB_LEAST_REQUEST_TYPE: {
      const m = decodeTyped(at, any);
      const choices = (m.choice_count as Msg | null)?.value;
      if (choices !== undefined && choices !== null && Number(choices) !== 2) throw new XdsResourceError(`${at}: choice_count ${choices} is not supported (the agent picks the better of 2)`);
      refuse(at, m, { active_request_bias: 'not supported', slow_start_config: 'not supported' });
      if (String(m.selection_method ?? 'N_CHOICES') !== 'N_CHOICES') throw new XdsResourceError(`${at}: selection_method ${String(m.selection_method)} is not supported (the agent picks the better of 2)`);
      return { lb: LB.least_request, locality: locality(at, m.locality_lb_config) };
    }
    case LB_ROUND_ROBIN_TYPE: {
      const m = decodeTyped(at, any);
      refuse(at, m, { slow_start_config: 'not supported' });
      return { lb: LB.round_robin, locality: locality(at, m.locality_lb_config) };
    }
    case LB_RANDOM_TYPE:
      return { lb: LB.random, locality: locality(at, decodeTyped(at, any).locality_lb_config) };
    case LB_RING_HASH_TYPE: {
      const m = decodeTyped(at, any);
      refuse(at, m, { consistent_hashing_lb_config: 'not supported', locality_weighted_lb_config: 'the agent does not weight localities' });
      const min = (m.minimum_ring_size as Msg | null)?.value;
      return { lb: min ? { kind: 'ring_hash', minRingSize: Number(min) } : { kind: 'ring_hash' } };
    }
    case LB_MAGLEV_TYPE: {
      const m = decodeTyped(at, any);
      refuse(at, m, { consistent_hashing_lb_config: 'not supported', locality_weighted_lb_config: 'the agent does not weight localities' });
      const size = (m.table_size as Msg | null)?.value;
      return { lb: size ? { kind: 'maglev', tableSize: Number(size) } : { kind: 'maglev' } };
    }
    case TYPED_STRUCT_TYPE: {
      const m = decodeTyped(at, any);
      return m.type_url === LB_PEAK_EWMA_TYPE_URL ? { lb: LB.peak_ewma } : null;
    }
    default:
      return null;
  }
}

/** The cluster's balancer: the first entry of load_balancing_policy the agent knows, else lb_policy. */
function loadBalancing(where: string, c: Msg): Pick {
  const lbp = c.load_balancing_policy as Msg | null | undefined;
  if (lbp) {
    const policies = list(lbp, 'policies');
    for (const p of policies) {
      const cfg = p.typed_extension_config as Msg | null | undefined;
      const any = cfg?.typed_config as Any | null | undefined;
      if (!any) continue;
      const picked = typedPolicy(`${where} load_balancing_policy ${String(cfg!.name)}`, any);
      if (picked) return picked;
    }
    throw new XdsResourceError(`${where}: load_balancing_policy lists no policy the agent knows (least_request, round_robin, random, ring_hash, maglev, ${LB_PEAK_EWMA_TYPE_URL})`);
  }
  const lb = String(c.lb_policy ?? 'ROUND_ROBIN');
  switch (lb) {
    case 'ROUND_ROBIN':
      return { lb: LB.round_robin };
    case 'LEAST_REQUEST': {
      const cfg = c.least_request_lb_config as Msg | null | undefined;
      const choices = (cfg?.choice_count as Msg | null | undefined)?.value;
      if (choices !== undefined && choices !== null && Number(choices) !== 2) throw new XdsResourceError(`${where}: least_request_lb_config choice_count ${choices} is not supported (the agent picks the better of 2)`);
      return { lb: LB.least_request };
    }
    case 'RANDOM':
      return { lb: LB.random };
    case 'RING_HASH': {
      const min = ((c.ring_hash_lb_config as Msg | null | undefined)?.minimum_ring_size as Msg | null | undefined)?.value;
      return { lb: min ? { kind: 'ring_hash', minRingSize: Number(min) } : { kind: 'ring_hash' } };
    }
    case 'MAGLEV': {
      const size = ((c.maglev_lb_config as Msg | null | undefined)?.table_size as Msg | null | undefined)?.value;
      return { lb: size ? { kind: 'maglev', tableSize: Number(size) } : { kind: 'maglev' } };
    }
    default:
      throw new XdsResourceError(`${where}: lb_policy ${lb} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, or load_balancing_policy)`);
  }
}

function limit(v: unknown): number | undefined {
  const n = (v as Msg | null | undefined)?.value;
  if (n === undefined || n === null) return undefined;
  return Number(n) >= UNLIMITED ? undefined : Number(n);
}

function circuitBreakers(where: string, cb: Msg, policy: ClusterPolicy): void {
  refuse(where, cb, { per_host_thresholds: 'limits are per cluster' });
  for (const t of list(cb, 'thresholds')) {
    if (String(t.priority ?? 'DEFAULT') !== 'DEFAULT') throw new XdsResourceError(`${where}: only DEFAULT priority thresholds are supported (endpoints have no priorities)`);
    refuse(where, t, { max_connection_pools: 'pools are per source pod and endpoint' });
    const pool: NonNullable<ClusterPolicy['connectionPool']> = {};
    const set = (k: keyof typeof pool, v: unknown): void => {
      const n = limit(v);
      if (n !== undefined) pool[k] = n;
    };
    set('maxConnections', t.max_connections);
    set('http1MaxPendingRequests', t.max_pending_requests);
    set('http2MaxRequests', t.max_requests);
    set('maxRetries', t.max_retries);
    if (Object.keys(pool).length > 0) policy.connectionPool = { ...policy.connectionPool, ...pool };
    const rb = t.retry_budget as Msg | null | undefined;
    if (rb) {
      policy.retryBudgetConcurrency = {
        percent: Number((rb.budget_percent as Msg | null)?.value ?? 20),
        minRetryConcurrency: Number((rb.min_retry_concurrency as Msg | null)?.value ?? 3),
      };
    }
  }
}

function outlierDetection(where: string, od: Msg): NonNullable<ClusterPolicy['outlierDetection']> {
  refuse(where, od, {
    split_external_local_origin_errors: 'connect failures count as 5xx and gateway errors',
    consecutive_local_origin_failure: 'connect failures count as 5xx and gateway errors',
    enforcing_local_origin_success_rate: 'success-rate ejection is not supported',
    failure_percentage_threshold: 'failure-percentage ejection is not supported',
    enforcing_failure_percentage: 'failure-percentage ejection is not supported',
    enforcing_failure_percentage_local_origin: 'failure-percentage ejection is not supported',
    max_ejection_time: 'ejections last base_ejection_time times their count, uncapped',
    max_ejection_time_jitter: 'not supported',
    monitors: 'not supported',
  });
  const value = (v: unknown, dflt: number): number => {
    const n = (v as Msg | null | undefined)?.value;
    return n === undefined || n === null ? dflt : Number(n);
  };
  // Envoy enables success-rate ejection unless told otherwise; the agent has only the consecutive kinds.
  if (value(od.enforcing_success_rate, 100) !== 0) throw new XdsResourceError(`${where}: success-rate ejection is not supported (set enforcing_success_rate to 0)`);
  const enforced = (field: string, dflt: number): boolean => {
    const e = value(od[field], dflt);
    if (e !== 0 && e !== 100) throw new XdsResourceError(`${where}: ${field} ${e} is not supported (0 or 100: the agent ejects every time or never)`);
    return e === 100;
  };
  const out: NonNullable<ClusterPolicy['outlierDetection']> = {
    intervalMs: durationMs(od.interval, 10_000),
    baseEjectionMs: durationMs(od.base_ejection_time, 30_000),
    maxEjectionPercent: value(od.max_ejection_percent, 10),
  };
  if (enforced('enforcing_consecutive_5xx', 100)) out.consecutive5xxErrors = value(od.consecutive_5xx, 5);
  if (enforced('enforcing_consecutive_gateway_failure', 0)) out.consecutiveGatewayErrors = value(od.consecutive_gateway_failure, 5);
  return out;
}

/** HttpProtocolOptions: idle timeout and requests per connection (the version is the port's protocol's). */
function protocolOptions(where: string, c: Msg, pool: NonNullable<ClusterPolicy['connectionPool']>): void {
  const opts = (c.typed_extension_protocol_options as Record<string, Any> | null | undefined) ?? {};
  for (const [name, any] of Object.entries(opts)) {
    if (name !== HTTP_PROTOCOL_OPTIONS_TYPE || any.type_url !== TYPE_URL_PREFIX + HTTP_PROTOCOL_OPTIONS_TYPE) {
      throw new XdsResourceError(`${where}: typed_extension_protocol_options ${name} is not supported (only ${HTTP_PROTOCOL_OPTIONS_TYPE})`);
    }
    const m = decodeTyped(`${where} ${name}`, any);
    refuse(`${where} ${name}`, m, { upstream_http_protocol_options: 'not supported', http_filters: 'upstream filters are not supported', header_validation_config: 'not supported' });
    const common = m.common_http_protocol_options as Msg | null | undefined;
    if (!common) continue;
    refuse(`${where} ${name} common_http_protocol_options`, common, { max_headers_count: 'not supported', max_connection_duration: 'use idle_timeout', max_stream_duration: 'use the route timeout' });
    if (common.idle_timeout) {
      const idle = durationMs(common.idle_timeout, 0);
      // Envoy reads 0 as "never close idle connections"; the pools always close them (undici refuses 0).
      if (idle < 1) throw new XdsResourceError(`${where} ${name}: common_http_protocol_options idle_timeout ${idle === 0 ? '0 (no idle timeout)' : 'under 1 ms'} is not supported (give a duration of at least 1 ms, or leave it unset for the agent's default)`);
      pool.idleTimeoutMs = idle;
    }
    const max = limit(common.max_requests_per_connection);
    if (max !== undefined) pool.maxRequestsPerConnection = max;
  }
  const legacy = limit(c.max_requests_per_connection);
  if (legacy !== undefined) pool.maxRequestsPerConnection = legacy;
}

/** `retryBudget: { retryRatio, minRetriesPerSecond, ttl }` (ttl as "10s" or "10000ms"). */
function rateBudget(where: string, v: unknown): ClusterPolicy['retryBudgetRate'] {
  const m = v as Record<string, unknown>;
  const ratio = Number(m?.retryRatio);
  const floor = Number(m?.minRetriesPerSecond);
  const ttl = /^(\d+)(ms|s)$/.exec(String(m?.ttl ?? ''));
  if (!(ratio >= 0) || !(floor >= 0) || !ttl) {
    throw new XdsResourceError(`${where}: metadata nodemesh.retryBudget must be { retryRatio: number >= 0, minRetriesPerSecond: number >= 0, ttl: "Ns" or "Nms" }, got ${JSON.stringify(v)}`);
  }
  const ttlMs = Number(ttl[1]) * (ttl[2] === 's' ? 1000 : 1);
  if (ttlMs < 1000 || ttlMs > 60_000) throw new XdsResourceError(`${where}: metadata nodemesh.retryBudget.ttl must be 1s-60s, got ${String(m.ttl)}`);
  return { ratio, minPerSecond: floor, ttlMs };
}

/** The ClusterPolicy a Cluster's fields ask for (`meta`: its filter_metadata.nodemesh). */
export function decodeClusterPolicy(where: string, c: Msg, meta: Record<string, unknown>): ClusterPolicy {
  return canonicalPolicy(buildClusterPolicy(where, c, meta));
}

function buildClusterPolicy(where: string, c: Msg, meta: Record<string, unknown>): ClusterPolicy {
  refuse(where, c, {
    lb_subset_config: 'endpoint subsets are not supported',
    health_checks: 'the agent does no active health checking (use outlier_detection)',
    upstream_connection_options: 'not supported',
    common_http_protocol_options: 'use typed_extension_protocol_options',
    http_protocol_options: 'use typed_extension_protocol_options',
    http2_protocol_options: 'use typed_extension_protocol_options',
    preconnect_policy: 'not supported',
  });
  const policy: ClusterPolicy = {};
  const pick = loadBalancing(where, c);
  policy.lb = pick.lb;
  const common = c.common_lb_config as Msg | null | undefined;
  let local = pick.locality === true;
  if (common) {
    refuse(`${where} common_lb_config`, common, {
      update_merge_window: 'updates apply at once',
      ignore_new_hosts_until_first_hc: 'there is no active health checking',
      close_connections_on_host_set_change: 'not supported',
      consistent_hashing_lb_config: 'not supported',
      override_host_status: 'not supported',
    });
    if (String(common.locality_config_specifier ?? '') === 'locality_weighted_lb_config') {
      throw new XdsResourceError(`${where}: common_lb_config.locality_weighted_lb_config is not supported (the agent prefers its own node, then zone: use zone_aware_lb_config)`);
    }
    if (common.zone_aware_lb_config) local = true;
  }
  if (local) policy.locality = { enabled: true };
  const pool: NonNullable<ClusterPolicy['connectionPool']> = {};
  if (c.circuit_breakers) circuitBreakers(`${where} circuit_breakers`, c.circuit_breakers as Msg, policy);
  protocolOptions(where, c, pool);
  if (Object.keys(pool).length > 0) policy.connectionPool = { ...policy.connectionPool, ...pool };
  if (c.outlier_detection) {
    const od = outlierDetection(`${where} outlier_detection`, c.outlier_detection as Msg);
    const panic = (common?.healthy_panic_threshold as Msg | null | undefined)?.value;
    // Envoy's panic threshold defaults to 50 %; Istio always writes minHealthPercent (0 when unset).
    od.minHealthPercent = panic === undefined || panic === null ? 50 : Number(panic);
    policy.outlierDetection = od;
  }
  if (meta.retryBudget !== undefined) policy.retryBudgetRate = rateBudget(where, meta.retryBudget);
  return policy;
}

