// The Listener an agent serves a Service VIP:port by, shaped by the port's protocol (tcp, HTTP, detect).
//
// - tcp: one filter chain with a tcp_proxy to the Service's cluster (the L4 path, unchanged).
// - http / http2 / grpc: one filter chain with an http_connection_manager (codec_type HTTP1 for http, HTTP2 for
//   http2 and grpc) reading its routes over RDS (ADS) by route_config_name, and the fault filter (empty: routes
//   bring their own FaultInjection as per-route config) before the router.
// - detect: the http_inspector listener filter, listener_filters_timeout = the detection bound,
//   continue_on_listener_filters_timeout true, and two chains: no match (the default) -> the tcp_proxy, and
//   application_protocols http/1.0, http/1.1, h2c -> the http_connection_manager (codec_type AUTO).
// The first chain is always named after the Service's cluster.
// Listener metadata (filter_metadata.nodemesh): service, namespace, host, port, vip, portName, appProtocol,
// protocol, cluster, and consumerRouteTables: { "<client namespace>": "<RouteConfiguration name>" } for the
// GAMMA consumer routes of that namespace (absent when there are none).

import { anyOf, toStruct, type JsonValue } from '../../xds/protos';
import {
  HCM_FILTER,
  HCM_TYPE,
  HTTP_APPLICATION_PROTOCOLS,
  HTTP_FAULT_FILTER,
  HTTP_FAULT_TYPE,
  HTTP_INSPECTOR_FILTER,
  HTTP_INSPECTOR_TYPE,
  METADATA_NAMESPACE,
  ROUTER_FILTER,
  ROUTER_TYPE,
  TCP_PROXY_FILTER,
  TCP_PROXY_TYPE,
} from '../../xds/resource-types';
import type { PortProtocol } from '../../state/routes';
import type { ServiceModel, ServicePortModel } from '../model';
import type { PortRoutes } from './route-tables';

type Msg = Record<string, unknown>;

/**
 * How long a `detect` port waits for the client's first bytes before the connection is plain TCP. Only a
 * server-first protocol on an undeclared port (SMTP, MySQL, ...) pays it in full, once per connection, before
 * its greeting, so it must stay short (Linkerd's 10 s there is its users' standing complaint). A client-first
 * client writes as soon as it is connected, so the bound only has to outlast scheduling delays on a busy node:
 * 100 ms does, and stays below what a person or a connect timeout notices. `--protocol-detection-timeout`.
 */
export const DEFAULT_DETECT_TIMEOUT_MS = 100;

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

const CODEC: Record<Exclude<PortProtocol, 'tcp'>, string> = { http: 'HTTP1', http2: 'HTTP2', grpc: 'HTTP2', detect: 'AUTO' };

export function tcpProxyFilter(statPrefix: string, cluster: string): Msg {
  return { name: TCP_PROXY_FILTER, typed_config: anyOf(TCP_PROXY_TYPE, { stat_prefix: statPrefix, cluster }) };
}

export const ROUTER = { name: ROUTER_FILTER, typed_config: anyOf(ROUTER_TYPE, {}) };
/** The HTTP fault filter with no faults of its own: what routes' typed_per_filter_config configures. */
export const FAULT = { name: HTTP_FAULT_FILTER, typed_config: anyOf(HTTP_FAULT_TYPE, {}) };

function httpConnectionManager(p: ServicePortModel, routeTable: string): Msg {
  return {
    name: HCM_FILTER,
    typed_config: anyOf(HCM_TYPE, {
      stat_prefix: p.clusterName,
      codec_type: CODEC[p.protocol as Exclude<PortProtocol, 'tcp'>],
      rds: { route_config_name: routeTable, config_source: ADS_SOURCE },
      http_filters: [FAULT, ROUTER],
    }),
  };
}

function durationOf(ms: number): Msg {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

export function buildVipListener(
  svc: ServiceModel,
  p: ServicePortModel,
  metadata: Record<string, JsonValue>,
  routes: PortRoutes | undefined,
  detectTimeoutMs: number = DEFAULT_DETECT_TIMEOUT_MS,
): Msg {
  const meta: Record<string, JsonValue> = { ...metadata, cluster: p.clusterName };
  const listener: Msg = {
    name: p.vipListenerName,
    address: { socket_address: { address: svc.vip, port_value: p.port.port } },
    traffic_direction: 'OUTBOUND',
    bind_to_port: { value: false },
  };
  const tcp = { name: p.clusterName, filters: [tcpProxyFilter(p.clusterName, p.clusterName)] };
  if (p.protocol === 'tcp' || !routes) {
    listener.filter_chains = [tcp];
  } else {
    if (routes.consumers.size > 0) meta.consumerRouteTables = Object.fromEntries([...routes.consumers].map(([ns, t]) => [ns, t.name]));
    const hcm = httpConnectionManager(p, routes.table.name);
    if (p.protocol === 'detect') {
      listener.listener_filters = [{ name: HTTP_INSPECTOR_FILTER, typed_config: anyOf(HTTP_INSPECTOR_TYPE, {}) }];
      listener.listener_filters_timeout = durationOf(detectTimeoutMs);
      listener.continue_on_listener_filters_timeout = true;
      // Envoy picks the most specific match whatever the order; the Service's own chain (named after its
      // cluster) comes first in every shape.
      listener.filter_chains = [tcp, { name: `${p.clusterName}|http`, filter_chain_match: { application_protocols: HTTP_APPLICATION_PROTOCOLS }, filters: [hcm] }];
    } else {
      listener.filter_chains = [{ name: p.clusterName, filters: [hcm] }];
    }
  }
  listener.metadata = { filter_metadata: { [METADATA_NAMESPACE]: toStruct(meta) } };
  return listener;
}
