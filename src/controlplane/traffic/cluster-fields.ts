// A Service port's traffic policy as standard Envoy Cluster fields (what agents decode back into ClusterPolicy,
// xds/decode-cluster-policy.ts, and what proxyless gRPC clients read from the same Cluster):
//
// - load balancing: `load_balancing_policy` lists the policy first, then round_robin. Envoy and the agent take
//   the first entry they know; grpc-js-xds (which reads load_balancing_policy when it is set, and knows
//   round_robin, ring_hash, wrr_locality and pick_first) skips least_request, random, maglev and PEAK_EWMA and
//   takes round_robin. PEAK_EWMA has no Envoy message: it travels as an xds.type.v3.TypedStruct whose
//   type_url is `type.googleapis.com/nodemesh.io.PeakEwma`. `lb_policy` stays a value every reader accepts
//   (ROUND_ROBIN, or RING_HASH for ring hashing) for readers that predate load_balancing_policy.
//   Ring hash says hash_function XX_HASH, the only one grpc-js-xds accepts (it refuses the whole cluster
//   otherwise); the agent places hosts on its ring with its own hash (agents agree with each other, which is
//   what consistent hashing across a mesh needs).
// - locality (localityLbSetting): `common_lb_config.zone_aware_lb_config` (the client prefers its own
//   locality), and `locality_lb_config.zone_aware_lb_config` in the typed policy where Envoy has one.
// - minHealthPercent: `common_lb_config.healthy_panic_threshold`.
// - connectionPool: `circuit_breakers.thresholds[DEFAULT]` max_connections, max_pending_requests,
//   max_requests, max_retries, with Istio's "unlimited" (2^32-1) for what is unset (Envoy's own defaults are
//   1024 and 3); trafficPolicy.retryBudget as its `retry_budget`; idleTimeout and maxRequestsPerConnection in
//   `typed_extension_protocol_options` (HttpProtocolOptions.common_http_protocol_options); connectTimeout as
//   `connect_timeout`.
// - outlierDetection: `outlier_detection` consecutive_5xx / consecutive_gateway_failure with their
//   enforcing_* at 100 (0 when off), interval, base_ejection_time, max_ejection_percent, and
//   enforcing_success_rate 0 (as Istio: success-rate ejection is off).
// - the rate budget for retries (Linkerd's model; Envoy has no field for it): filter_metadata.nodemesh
//   `retryBudget: { retryRatio, minRetriesPerSecond, ttl }`.

import type { PortProtocol } from '../../state/routes';
import type { ClusterPolicy, LoadBalancing } from '../../state/services';
import { anyOf, type JsonValue } from '../../xds/protos';
import {
  HTTP_PROTOCOL_OPTIONS_TYPE,
  LB_LEAST_REQUEST_TYPE,
  LB_MAGLEV_TYPE,
  LB_PEAK_EWMA_TYPE_URL,
  LB_RANDOM_TYPE,
  LB_RING_HASH_TYPE,
  LB_ROUND_ROBIN_TYPE,
  TYPED_STRUCT_TYPE,
} from '../../xds/resource-types';
import type { ClusterTraffic } from './traffic-model';

type Msg = Record<string, unknown>;

/** What Istio writes for an unset limit: Envoy's own defaults (1024 connections, 3 retries) are not Istio's "unlimited". */
export const UNLIMITED = 4_294_967_295;

/** The names the typed policies carry (Envoy's extension names). */
export const LB_POLICY_NAMES = {
  least_request: 'envoy.load_balancing_policies.least_request',
  round_robin: 'envoy.load_balancing_policies.round_robin',
  random: 'envoy.load_balancing_policies.random',
  ring_hash: 'envoy.load_balancing_policies.ring_hash',
  maglev: 'envoy.load_balancing_policies.maglev',
  peak_ewma: 'nodemesh.load_balancing_policies.peak_ewma',
} as const;

function duration(ms: number): Msg {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

const ZONE_AWARE = { zone_aware_lb_config: { routing_enabled: { value: 100 }, min_cluster_size: { value: 1 } } };

function typedPolicy(lb: LoadBalancing, locality: boolean): Msg {
  const loc = locality ? { locality_lb_config: ZONE_AWARE } : {};
  const entry = (name: string, typed: unknown): Msg => ({ typed_extension_config: { name, typed_config: typed } });
  switch (lb.kind) {
    case 'least_request':
      return entry(LB_POLICY_NAMES.least_request, anyOf(LB_LEAST_REQUEST_TYPE, { choice_count: { value: 2 }, ...loc }));
    case 'round_robin':
      return entry(LB_POLICY_NAMES.round_robin, anyOf(LB_ROUND_ROBIN_TYPE, { ...loc }));
    case 'random':
      return entry(LB_POLICY_NAMES.random, anyOf(LB_RANDOM_TYPE, { ...loc }));
    case 'ring_hash':
      return entry(LB_POLICY_NAMES.ring_hash, anyOf(LB_RING_HASH_TYPE, { hash_function: 'XX_HASH', minimum_ring_size: { value: lb.minRingSize ?? 1024 } }));
    case 'maglev':
      return entry(LB_POLICY_NAMES.maglev, anyOf(LB_MAGLEV_TYPE, lb.tableSize !== undefined ? { table_size: { value: lb.tableSize } } : {}));
    case 'peak_ewma':
      return entry(LB_POLICY_NAMES.peak_ewma, anyOf(TYPED_STRUCT_TYPE, { type_url: LB_PEAK_EWMA_TYPE_URL, value: { fields: {} } }));
  }
}

/** How the port's HTTP connections are made: what HttpProtocolOptions must say (one of its three is required). */
function upstreamProtocol(protocol: PortProtocol): Msg {
  if (protocol === 'http') return { explicit_http_config: { http_protocol_options: {} } };
  if (protocol === 'http2' || protocol === 'grpc') return { explicit_http_config: { http2_protocol_options: {} } };
  return { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } };
}

function circuitBreakers(policy: ClusterPolicy | undefined): Msg {
  const cp = policy?.connectionPool;
  const t: Msg = {
    priority: 'DEFAULT',
    max_connections: { value: cp?.maxConnections ?? UNLIMITED },
    max_pending_requests: { value: cp?.http1MaxPendingRequests ?? UNLIMITED },
    max_requests: { value: cp?.http2MaxRequests ?? UNLIMITED },
    max_retries: { value: cp?.maxRetries ?? UNLIMITED },
  };
  const rb = policy?.retryBudgetConcurrency;
  if (rb) t.retry_budget = { budget_percent: { value: rb.percent }, min_retry_concurrency: { value: rb.minRetryConcurrency } };
  return { thresholds: [t] };
}

function outlierDetection(od: NonNullable<ClusterPolicy['outlierDetection']>): Msg {
  const c5 = od.consecutive5xxErrors ?? 0;
  const gw = od.consecutiveGatewayErrors ?? 0;
  const out: Msg = {
    consecutive_5xx: { value: c5 },
    enforcing_consecutive_5xx: { value: c5 > 0 ? 100 : 0 },
    interval: duration(od.intervalMs),
    base_ejection_time: duration(od.baseEjectionMs),
    max_ejection_percent: { value: od.maxEjectionPercent },
    enforcing_success_rate: { value: 0 },
  };
  if (gw > 0) {
    out.consecutive_gateway_failure = { value: gw };
    out.enforcing_consecutive_gateway_failure = { value: 100 };
  }
  return out;
}

/**
 * The Cluster fields of a Service port with this traffic (no DestinationRule: LEAST_REQUEST and no limits), and
 * what goes into its filter_metadata.nodemesh.
 */
export function clusterTrafficFields(t: ClusterTraffic | undefined, protocol: PortProtocol): { fields: Msg; metadata: Record<string, JsonValue> } {
  const policy = t?.policy;
  const lb = policy?.lb ?? { kind: 'least_request' };
  const locality = policy?.locality?.enabled === true;
  const fields: Msg = {
    lb_policy: lb.kind === 'ring_hash' ? 'RING_HASH' : 'ROUND_ROBIN',
    load_balancing_policy: { policies: lb.kind === 'round_robin' ? [typedPolicy(lb, locality)] : [typedPolicy(lb, locality), typedPolicy({ kind: 'round_robin' }, locality)] },
    circuit_breakers: circuitBreakers(policy),
  };
  if (lb.kind === 'ring_hash') fields.ring_hash_lb_config = { minimum_ring_size: { value: lb.minRingSize ?? 1024 }, hash_function: 'XX_HASH' };
  const common: Msg = {};
  if (locality) Object.assign(common, ZONE_AWARE);
  if (policy?.outlierDetection) common.healthy_panic_threshold = { value: policy.outlierDetection.minHealthPercent ?? 0 };
  if (Object.keys(common).length > 0) fields.common_lb_config = common;
  if (policy?.outlierDetection) fields.outlier_detection = outlierDetection(policy.outlierDetection);
  const cp = policy?.connectionPool;
  if (protocol !== 'tcp' && (cp?.idleTimeoutMs !== undefined || cp?.maxRequestsPerConnection !== undefined)) {
    const common: Msg = {};
    if (cp.idleTimeoutMs !== undefined) common.idle_timeout = duration(cp.idleTimeoutMs);
    if (cp.maxRequestsPerConnection !== undefined) common.max_requests_per_connection = { value: cp.maxRequestsPerConnection };
    fields.typed_extension_protocol_options = {
      [HTTP_PROTOCOL_OPTIONS_TYPE]: anyOf(HTTP_PROTOCOL_OPTIONS_TYPE, { common_http_protocol_options: common, ...upstreamProtocol(protocol) }),
    };
  }
  if (t?.connectTimeoutMs !== undefined) fields.connect_timeout = duration(t.connectTimeoutMs);
  const metadata: Record<string, JsonValue> = {};
  const rb = policy?.retryBudgetRate;
  if (rb) metadata.retryBudget = { retryRatio: rb.ratio, minRetriesPerSecond: rb.minPerSecond, ttl: `${rb.ttlMs}ms` };
  if (t?.source) metadata.destinationRule = t.source;
  return { fields, metadata };
}
