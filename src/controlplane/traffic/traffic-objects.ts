// Validated traffic-policy objects, as the store holds them: Istio's DestinationRule (networking.istio.io/v1)
// and nodemesh's own FaultInjection (nodemesh.io/v1alpha1, named by HTTPRoute ExtensionRef filters).
//
// Their settings are already in the agent's shapes (state/services.ts ClusterPolicy, state/routes.ts
// RoutePolicy), so the control plane and the agent speak of one thing; only which Service a host names is
// left to resolve (traffic-model.ts).

import type { RoutePolicy } from '../../state/routes';
import type { ClusterPolicy, LoadBalancing } from '../../state/services';
import type { ObjectMeta } from '../objects';

/**
 * One DestinationRule traffic policy, by Istio's groups: a port-level setting replaces a whole group of the
 * rule's top-level policy (Istio merges them so), never single fields inside one.
 */
export interface TrafficPolicy {
  loadBalancer?: {
    /** Unset: LEAST_REQUEST (Istio's default). */
    lb?: LoadBalancing;
    /** consistentHash's key: what the routes to the Service hash on (Envoy's hash_policy). */
    hash?: NonNullable<RoutePolicy['hash']>;
    /** localityLbSetting enabled: same node first, then same zone. */
    locality?: boolean;
  };
  connectionPool?: NonNullable<ClusterPolicy['connectionPool']> & { connectTimeoutMs?: number };
  outlierDetection?: NonNullable<ClusterPolicy['outlierDetection']>;
  /** trafficPolicy.retryBudget (Envoy's concurrency budget); not a port-level setting in Istio. */
  retryBudget?: NonNullable<ClusterPolicy['retryBudgetConcurrency']>;
}

export interface DestinationRuleObject {
  kind: 'DestinationRule';
  meta: ObjectMeta;
  apiVersion: string;
  /** As written (a short name, an FQDN or a `*.` wildcard). */
  host: string;
  trafficPolicy: TrafficPolicy;
  /** portLevelSettings, by Service port number. */
  portLevel: { port: number; policy: TrafficPolicy }[];
  /** Names of the subsets it defines (no HTTPRoute can name a subset: reported, not translated). */
  subsets: string[];
}

/** FaultInjection spec: a delay and/or an abort, each on its share (0-1) of the requests. */
export interface FaultInjectionObject {
  kind: 'FaultInjection';
  meta: ObjectMeta;
  apiVersion: string;
  fault: NonNullable<RoutePolicy['fault']>;
}

export type TrafficObject = DestinationRuleObject | FaultInjectionObject;
