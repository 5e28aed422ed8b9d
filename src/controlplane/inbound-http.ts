// The HTTP side of a pod's inbound chain: requests to the pod, judged one by one by the HTTP view of its policies.
//
// Shape (per pod that has AuthorizationPolicies): a filter chain named `<ns>/<pod>|http` matching the pod's IP
// and application_protocols http/1.0, http/1.1, h2c (what the listener's http_inspector reports), holding an
// http_connection_manager (codec AUTO) whose http_filters are envoy.filters.http.rbac (DENY, then ALLOW: the
// HTTP view, every field) and the router, with an inline route to InboundPassthroughCluster. Its metadata is the
// pod chain's plus `view: "http"`. The pod's TCP chain (network RBAC: the TCP view) stays the fallback.

import { anyOf, toStruct, type JsonValue } from '../xds/protos';
import { HCM_FILTER, HCM_TYPE, HTTP_APPLICATION_PROTOCOLS, HTTP_INSPECTOR_FILTER, HTTP_INSPECTOR_TYPE, METADATA_NAMESPACE } from '../xds/resource-types';
import type { PodObject } from './objects';
import type { WorkloadPolicy } from './policy';
import { buildRbacFilters } from './policy-rbac';
import { DEFAULT_DETECT_TIMEOUT_MS, ROUTER } from './routes/vip-listener';

type Msg = Record<string, unknown>;

/** Whether the pod needs an HTTP chain: only policies make requests differ from connections. */
export function needsHttpChain(wp: WorkloadPolicy): boolean {
  return wp.deny.length > 0 || wp.allow.length > 0;
}

export function inboundHttpChain(pod: PodObject, wp: WorkloadPolicy, metadata: Record<string, JsonValue>, passthroughCluster: string): Msg {
  const id = `${pod.meta.namespace}/${pod.meta.name}`;
  return {
    name: `${id}|http`,
    filter_chain_match: {
      prefix_ranges: [{ address_prefix: pod.podIP, prefix_len: { value: pod.podIP!.includes(':') ? 128 : 32 } }],
      application_protocols: HTTP_APPLICATION_PROTOCOLS,
    },
    filters: [
      {
        name: HCM_FILTER,
        typed_config: anyOf(HCM_TYPE, {
          stat_prefix: `inbound|${id}|http`,
          codec_type: 'AUTO',
          route_config: {
            name: `inbound|${id}`,
            virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: passthroughCluster } }] }],
          },
          http_filters: [...buildRbacFilters(wp, `inbound|${id}`, 'http'), ROUTER],
        }),
      },
    ],
    metadata: { filter_metadata: { [METADATA_NAMESPACE]: toStruct({ ...metadata, view: 'http' }) } },
  };
}

/** What a listener with HTTP chains needs to tell HTTP from the rest: http_inspector, bounded. */
export function httpInspection(detectTimeoutMs = DEFAULT_DETECT_TIMEOUT_MS): Msg {
  return {
    listener_filters: [{ name: HTTP_INSPECTOR_FILTER, typed_config: anyOf(HTTP_INSPECTOR_TYPE, {}) }],
    listener_filters_timeout: { seconds: Math.floor(detectTimeoutMs / 1000), nanos: (detectTimeoutMs % 1000) * 1e6 },
    continue_on_listener_filters_timeout: true,
  };
}
