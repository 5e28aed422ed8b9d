// LDS on the agent, outbound: a Service VIP listener -> ServicePort (protocol, cluster, route tables, detection).
// The shapes are the control plane's (controlplane/routes/vip-listener.ts); anything else the agent cannot
// serve the same way is refused with what it would need.

import type { PortProtocol } from '../state/routes';
import type { VipInfo } from '../state/services';
import type { AgentResource } from './agent-resources';
import { protocolOf } from './decode-clusters';
import { decodeTyped, durationMs, intern, isType, list, nodemeshMeta, XdsResourceError, type Msg } from './decode-util';
import { decodeHttpFault } from './decode-route-policy';
import { HCM_TYPE, HTTP_FAULT_TYPE, HTTP_INSPECTOR_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE } from './resource-types';

const CODEC_PROTOCOL: Record<string, PortProtocol> = { HTTP1: 'http', HTTP2: 'http2', AUTO: 'http' };

/** The tcp_proxy's cluster, from a chain whose only filter is one. */
function tcpProxyCluster(where: string, chain: Msg): string {
  const filters = list(chain, 'filters');
  const tcp = filters.find((f) => isType(f.typed_config, TCP_PROXY_TYPE));
  if (!tcp || filters.length !== 1) throw new XdsResourceError(`${where}: a TCP chain must hold exactly one tcp_proxy filter`);
  const proxy = decodeTyped(where, tcp.typed_config as never);
  const cluster = typeof proxy.cluster === 'string' ? proxy.cluster : '';
  if (!cluster) throw new XdsResourceError(`${where}: tcp_proxy without a cluster (weighted_clusters are not supported)`);
  return intern(cluster);
}

/** An http_connection_manager with RDS over ADS and only the router: its codec and route table name. */
export function outboundHcm(where: string, chain: Msg): { codec: string; routeTable: string } {
  const filters = list(chain, 'filters');
  if (filters.length !== 1 || !isType(filters[0]!.typed_config, HCM_TYPE)) {
    throw new XdsResourceError(`${where}: an HTTP chain must hold exactly one http_connection_manager`);
  }
  const hcm = decodeTyped(where, filters[0]!.typed_config as never);
  const rds = hcm.rds as Msg | null | undefined;
  if (!rds || typeof rds.route_config_name !== 'string' || !rds.route_config_name) {
    throw new XdsResourceError(`${where}: http_connection_manager needs rds with a route_config_name (inline route_config and scoped routes are not supported outbound)`);
  }
  const source = rds.config_source as Msg | null | undefined;
  if (source && source.config_source_specifier !== 'ads') throw new XdsResourceError(`${where}: rds must come from ADS (config_source ads)`);
  const httpFilters = list(hcm, 'http_filters');
  // The fault filter may come first, without faults of its own: routes configure it (typed_per_filter_config).
  const fault = httpFilters.length === 2 && isType(httpFilters[0]!.typed_config, HTTP_FAULT_TYPE) ? httpFilters[0]! : null;
  if (fault && decodeHttpFault(`${where} fault filter`, decodeTyped(where, fault.typed_config as never)) !== undefined) {
    throw new XdsResourceError(`${where}: the fault filter may not inject faults for the whole listener (give each route its FaultInjection in typed_per_filter_config)`);
  }
  const rest = fault ? httpFilters.slice(1) : httpFilters;
  const unsupported = rest.filter((f) => !isType(f.typed_config, ROUTER_TYPE)).map((f) => String(f.name || (f.typed_config as { type_url?: string } | null)?.type_url));
  if (unsupported.length > 0 || rest.length !== 1) {
    throw new XdsResourceError(`${where}: outbound http_filters must be the router, after an optional fault filter (not supported: ${unsupported.join(', ') || 'none given'})`);
  }
  return { codec: String(hcm.codec_type ?? 'AUTO'), routeTable: intern(rds.route_config_name) };
}

/** Listener metadata consumerRouteTables: { namespace: RouteConfiguration name }. */
function consumerTables(where: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new XdsResourceError(`${where}: metadata consumerRouteTables must be a map of namespace to route table name`);
  const out: Record<string, string> = {};
  for (const [ns, t] of Object.entries(v)) {
    if (typeof t !== 'string' || !t) throw new XdsResourceError(`${where}: consumerRouteTables.${ns} must name a route table`);
    out[ns] = t;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

export function decodeVipListener(name: string, l: Msg): AgentResource {
  const where = `listener ${name}`;
  const sa = (l.address as Msg | undefined)?.socket_address as Msg | undefined;
  if (!sa || typeof sa.address !== 'string') throw new XdsResourceError(`${where}: no socket address (outbound listeners must name VIP:port)`);
  const port = Number(sa.port_value ?? 0);
  const meta = nodemeshMeta(l.metadata);
  const chains = list(l, 'filter_chains');
  if (l.default_filter_chain) throw new XdsResourceError(`${where}: default_filter_chain is not supported (give the fallback chain an empty filter_chain_match)`);
  const listenerFilters = list(l, 'listener_filters');
  const detect = listenerFilters.some((f) => isType(f.typed_config, HTTP_INSPECTOR_TYPE));
  const others = listenerFilters.filter((f) => !isType(f.typed_config, HTTP_INSPECTOR_TYPE));
  if (others.length > 0) throw new XdsResourceError(`${where}: listener filters other than http_inspector are not supported (${others.map((f) => String(f.name)).join(', ')})`);

  if (detect) {
    if (l.continue_on_listener_filters_timeout !== true) {
      throw new XdsResourceError(`${where}: with http_inspector, continue_on_listener_filters_timeout must be true (the agent treats an undetected connection as TCP)`);
    }
    const timeoutMs = durationMs(l.listener_filters_timeout, -1);
    if (timeoutMs <= 0) throw new XdsResourceError(`${where}: with http_inspector, listener_filters_timeout must be set and above 0 (the detection bound)`);
    const http = chains.filter((c) => list(c.filter_chain_match as Msg, 'application_protocols').length > 0);
    const tcp = chains.filter((c) => !http.includes(c));
    if (chains.length !== 2 || http.length !== 1) {
      throw new XdsResourceError(`${where}: a detecting listener needs two chains: one matching application_protocols (HTTP), one without (TCP)`);
    }
    const hcm = outboundHcm(`${where} chain ${String(http[0]!.name)}`, http[0]!);
    const cluster = tcpProxyCluster(`${where} chain ${String(tcp[0]!.name)}`, tcp[0]!);
    const vip: VipInfo = { vip: sa.address, port, cluster, protocol: 'detect', detectTimeoutMs: timeoutMs, routeTable: hcm.routeTable };
    const consumers = consumerTables(where, meta.consumerRouteTables);
    if (consumers) vip.consumerRouteTables = consumers;
    return { kind: 'vip', vip };
  }

  if (chains.length !== 1) throw new XdsResourceError(`${where}: expected one filter chain (or http_inspector with two), got ${chains.length}`);
  const chain = chains[0]!;
  const filters = list(chain, 'filters');
  if (filters.some((f) => isType(f.typed_config, HCM_TYPE))) {
    const hcm = outboundHcm(`${where} chain ${String(chain.name)}`, chain);
    const cluster = typeof meta.cluster === 'string' ? intern(meta.cluster) : '';
    if (!cluster) throw new XdsResourceError(`${where}: an HTTP listener needs metadata nodemesh.cluster (the Service's own cluster)`);
    // Metadata says which HTTP the port speaks (http2 and grpc share a codec); the codec is the fallback.
    const protocol = meta.protocol !== undefined ? protocolOf(where, meta.protocol) : (CODEC_PROTOCOL[hcm.codec] ?? 'http');
    if (protocol === 'tcp' || protocol === 'detect') throw new XdsResourceError(`${where}: metadata protocol ${protocol} does not fit an http_connection_manager without http_inspector`);
    const vip: VipInfo = { vip: sa.address, port, cluster, protocol, routeTable: hcm.routeTable };
    const consumers = consumerTables(where, meta.consumerRouteTables);
    if (consumers) vip.consumerRouteTables = consumers;
    return { kind: 'vip', vip };
  }
  const cluster = tcpProxyCluster(where, chain);
  return { kind: 'vip', vip: { vip: sa.address, port, cluster, protocol: 'tcp' } };
}
