// xDS v3 type URLs and nodemesh's resource naming scheme, shared by the control plane and the agent's xDS client.

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

export const LISTENER_TYPE = 'envoy.config.listener.v3.Listener';
export const ROUTE_TYPE = 'envoy.config.route.v3.RouteConfiguration';
export const CLUSTER_TYPE = 'envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
export const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';
export const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
/** Network RBAC filter: inbound authorization, one per action, before the tcp_proxy. */
export const RBAC_TYPE = 'envoy.extensions.filters.network.rbac.v3.RBAC';
/** HTTP RBAC filter: inbound authorization of each request, in the http_connection_manager of a pod's HTTP chain. */
export const HTTP_RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
/** Listener filter that sniffs HTTP/1.x and h2c: what `detect` ports use. */
export const HTTP_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
/** HTTP fault filter: its per-route config (typed_per_filter_config) carries a route's FaultInjection. */
export const HTTP_FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
/** Cluster typed_extension_protocol_options: upstream idle timeout and requests per connection. */
export const HTTP_PROTOCOL_OPTIONS_TYPE = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
/** Cluster load_balancing_policy extensions (Envoy's typed LB policies, in order of preference). */
export const LB_LEAST_REQUEST_TYPE = 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';
export const LB_ROUND_ROBIN_TYPE = 'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin';
export const LB_RANDOM_TYPE = 'envoy.extensions.load_balancing_policies.random.v3.Random';
export const LB_RING_HASH_TYPE = 'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash';
export const LB_MAGLEV_TYPE = 'envoy.extensions.load_balancing_policies.maglev.v3.Maglev';
/** A policy Envoy has no message for travels as a TypedStruct naming its own type URL (xDS's way for custom extensions). */
export const TYPED_STRUCT_TYPE = 'xds.type.v3.TypedStruct';
/** nodemesh's PEAK_EWMA balancer, inside a TypedStruct: readers that do not know it skip to the next policy. */
export const LB_PEAK_EWMA_TYPE_URL = 'type.googleapis.com/nodemesh.io.PeakEwma';

/** Filter names nodemesh writes (and the agent expects alongside the typed_config). */
export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const ROUTER_FILTER = 'envoy.filters.http.router';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';
export const HTTP_INSPECTOR_FILTER = 'envoy.filters.listener.http_inspector';
export const HTTP_FAULT_FILTER = 'envoy.filters.http.fault';
/** What http_inspector reports as application protocols: the chain that takes detected HTTP matches them. */
export const HTTP_APPLICATION_PROTOCOLS = ['http/1.0', 'http/1.1', 'h2c'];

export const LDS = TYPE_URL_PREFIX + LISTENER_TYPE;
export const RDS = TYPE_URL_PREFIX + ROUTE_TYPE;
export const CDS = TYPE_URL_PREFIX + CLUSTER_TYPE;
export const EDS = TYPE_URL_PREFIX + ENDPOINT_TYPE;

/** The four resource types served over ADS, in the order a client should apply them (CDS before EDS, LDS before RDS). */
export const XDS_TYPE_URLS = [CDS, EDS, LDS, RDS] as const;
export type XdsTypeUrl = (typeof XDS_TYPE_URLS)[number];

export function isXdsTypeUrl(url: string): url is XdsTypeUrl {
  return (XDS_TYPE_URLS as readonly string[]).includes(url);
}

/** Short names for logs and metric labels. */
export function typeShortName(url: string): string {
  switch (url) {
    case LDS:
      return 'lds';
    case RDS:
      return 'rds';
    case CDS:
      return 'cds';
    case EDS:
      return 'eds';
    default:
      return url.slice(url.lastIndexOf('.') + 1);
  }
}

/** Filter-metadata namespace for everything nodemesh attaches to resources. */
export const METADATA_NAMESPACE = 'nodemesh';

export const DEFAULT_DOMAIN = 'cluster.local';

/** `SVC.NS.svc.cluster.local`. */
export function serviceHost(name: string, namespace: string, domain = DEFAULT_DOMAIN): string {
  return `${name}.${namespace}.svc.${domain}`;
}

/**
 * The workload directory: per node with in-mesh pods, a Cluster + ClusterLoadAssignment listing its pods at
 * their HBONE address (pod IP, 15008) with their identity metadata, so agents know which destinations speak
 * mTLS and as whom, whether or not a Service selects them. Nothing routes to it. One part per node, so a pod
 * change re-sends one node's part, and no part outgrows a message as the cluster grows.
 */
export const WORKLOADS_CLUSTER_PREFIX = 'nodemesh-workloads|';

export function workloadsClusterName(node: string): string {
  return WORKLOADS_CLUSTER_PREFIX + node;
}
export const HBONE_PORT = 15008;

/** Cluster and ClusterLoadAssignment name for one service port (Istio's outbound naming). */
export function outboundClusterName(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

/** Parses `outbound|PORT||HOST`; undefined for other names. */
export function parseOutboundClusterName(name: string): { port: number; host: string } | undefined {
  const m = /^outbound\|(\d+)\|[^|]*\|(.+)$/.exec(name);
  return m ? { port: Number(m[1]), host: m[2] } : undefined;
}

/** Listener (api_listener, for proxyless gRPC) and RouteConfiguration name: `HOST:PORT`, what `xds:///HOST:PORT` asks for. */
export function serviceListenerName(host: string, port: number): string {
  return `${host}:${port}`;
}

/**
 * RouteConfiguration an agent's VIP listener reads for one Service port: `routes|HOST:PORT` (producer routes, or
 * the default route), `routes|HOST:PORT|consumer=NS` for clients in namespace NS that have consumer routes.
 */
export function routeTableName(host: string, port: number, consumerNamespace?: string): string {
  return `routes|${host}:${port}${consumerNamespace ? `|consumer=${consumerNamespace}` : ''}`;
}

/**
 * A weighted cluster whose backendRef names nothing usable (a missing Service or port, an unsupported kind):
 * `invalid|<why>`. No such cluster exists, so its share of requests fails (the route's
 * cluster_not_found_response_code says with what); the agent reads the reason into WeightedBackend.invalid.
 */
export const INVALID_BACKEND_PREFIX = 'invalid|';

/** Listener an agent binds (logically) for a service VIP: `vip|VIP:PORT` (IPv6 VIPs in brackets). */
export function vipListenerName(vip: string, port: number): string {
  return `vip|${vip.includes(':') ? `[${vip}]` : vip}:${port}`;
}

/** A node's inbound Listener: its local in-mesh workloads. */
export function inboundListenerName(node: string): string {
  return `inbound|${node}`;
}

export function isInboundListenerName(name: string): boolean {
  return name.startsWith('inbound|');
}

/** Node metadata key that names the Kubernetes node an xDS client runs on (falls back to Node.id). */
export const NODE_NAME_METADATA = 'NODE_NAME';
