// Translates the mesh model into Envoy xDS v3 resources (Cluster, ClusterLoadAssignment, Listener, RouteConfiguration).

import { createHash } from 'node:crypto';
import { anyOf, toAny, toStruct, type AnyMessage, type JsonValue } from '../xds/protos';
import {
  CDS,
  CLUSTER_TYPE,
  EDS,
  ENDPOINT_TYPE,
  HCM_TYPE,
  inboundListenerName,
  LDS,
  LISTENER_TYPE,
  METADATA_NAMESPACE,
  RDS,
  ROUTE_TYPE,
  type XdsTypeUrl,
  HBONE_PORT,
  WORKLOADS_CLUSTER,
} from '../xds/resource-types';
import type { EndpointModel, MeshModel, ServiceModel, ServicePortModel } from './model';
import type { PodObject } from './objects';
import { DEFAULT_WORKLOAD_POLICY, policyName, type WorkloadPolicy } from './policy';
import { httpInspection, inboundHttpChain, needsHttpChain } from './inbound-http';
import { buildRbacFilters } from './policy-rbac';
import { buildRouteTableConfig } from './routes/rds';
import { buildRouteModel, defaultRoute } from './routes/route-tables';
import { buildVipListener, ROUTER, tcpProxyFilter } from './routes/vip-listener';
import { clusterTrafficFields } from './traffic/cluster-fields';
import type { ClusterTraffic } from './traffic/traffic-model';

/** One encoded resource with its content version (a hash, so identical config has identical versions everywhere). */
export interface XdsResource {
  typeUrl: XdsTypeUrl;
  name: string;
  version: string;
  /** The message as built (with readable Any markers), for /debug/config. */
  message: Record<string, unknown>;
  any: AnyMessage;
}

/** Inbound capture port in each pod (ztunnel's number). */
export const INBOUND_PORT = 15006;
/** The ORIGINAL_DST cluster inbound filter chains hand connections to (Istio's name). */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const CONNECT_TIMEOUT = { seconds: 5 };

const TYPE_NAMES: Record<XdsTypeUrl, string> = {
  [CDS]: CLUSTER_TYPE,
  [EDS]: ENDPOINT_TYPE,
  [LDS]: LISTENER_TYPE,
  [RDS]: ROUTE_TYPE,
};

export function makeResource(typeUrl: XdsTypeUrl, name: string, message: Record<string, unknown>): XdsResource {
  const any = toAny(TYPE_NAMES[typeUrl], message);
  const version = createHash('sha256').update(any.value).digest('hex').slice(0, 16);
  return { typeUrl, name, version, message, any };
}

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

function nodemeshMetadata(fields: Record<string, JsonValue>): Record<string, unknown> {
  return { filter_metadata: { [METADATA_NAMESPACE]: toStruct(fields) } };
}

function serviceMetadata(svc: ServiceModel, p: ServicePortModel): Record<string, JsonValue> {
  const m: Record<string, JsonValue> = { service: svc.name, namespace: svc.namespace, host: svc.host, port: p.port.port, protocol: p.protocol };
  if (svc.vip) m.vip = svc.vip;
  if (p.port.name) m.portName = p.port.name;
  if (p.port.appProtocol) m.appProtocol = p.port.appProtocol;
  return m;
}

/** A Service port's Cluster; its DestinationRule's policy (traffic/cluster-fields.ts) when one applies. */
export function buildCluster(svc: ServiceModel, p: ServicePortModel, traffic?: ClusterTraffic): Record<string, unknown> {
  const t = clusterTrafficFields(traffic, p.protocol);
  return {
    name: p.clusterName,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: p.clusterName },
    connect_timeout: CONNECT_TIMEOUT,
    ...t.fields,
    metadata: nodemeshMetadata({ ...serviceMetadata(svc, p), ...t.metadata }),
  };
}

function endpointMetadata(e: EndpointModel): Record<string, JsonValue> {
  const m: Record<string, JsonValue> = { pod: e.pod, namespace: e.namespace, serviceAccount: e.serviceAccount, node: e.node, inMesh: e.inMesh };
  if (e.app !== undefined) m.app = e.app;
  if (e.version !== undefined) m.version = e.version;
  return m;
}

/** Endpoints grouped into one locality per node (zone = node name), each weighted by its endpoint count. */
export function buildLoadAssignment(p: ServicePortModel): Record<string, unknown> {
  const byNode = new Map<string, EndpointModel[]>();
  for (const e of p.endpoints) {
    const list = byNode.get(e.node) ?? [];
    list.push(e);
    byNode.set(e.node, list);
  }
  return {
    cluster_name: p.clusterName,
    endpoints: [...byNode.keys()].sort().map((node) => {
      const eps = byNode.get(node)!;
      return {
        locality: { zone: node },
        load_balancing_weight: { value: eps.length },
        lb_endpoints: eps.map((e) => ({
          endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
          health_status: 'HEALTHY',
          load_balancing_weight: { value: 1 },
          metadata: nodemeshMetadata(endpointMetadata(e)),
        })),
      };
    }),
  };
}

/** Names a client may use for the service: FQDN, `svc.ns.svc`, `svc.ns`, `svc`, the VIP; each bare and with `:port`. */
export function routeDomains(svc: ServiceModel, port: number): string[] {
  const bases = [svc.host, `${svc.name}.${svc.namespace}.svc`, `${svc.name}.${svc.namespace}`, svc.name];
  if (svc.vip) bases.push(svc.vip.includes(':') ? `[${svc.vip}]` : svc.vip);
  return bases.flatMap((b) => [b, `${b}:${port}`]);
}

/** A Listener with only an api_listener: what proxyless gRPC clients resolve `xds:///HOST:PORT` to. */
export function buildServiceListener(svc: ServiceModel, p: ServicePortModel): Record<string, unknown> {
  return {
    name: p.listenerName,
    api_listener: {
      api_listener: anyOf(HCM_TYPE, {
        stat_prefix: p.listenerName,
        rds: { route_config_name: p.listenerName, config_source: ADS_SOURCE },
        http_filters: [ROUTER],
      }),
    },
    metadata: nodemeshMetadata(serviceMetadata(svc, p)),
  };
}

function workloadMetadata(pod: PodObject): Record<string, JsonValue> {
  return {
    pod: pod.meta.name,
    namespace: pod.meta.namespace,
    serviceAccount: pod.serviceAccount,
    uid: pod.meta.uid,
    node: pod.nodeName ?? '',
    ip: pod.podIP ?? '',
  };
}

/** What the chain's metadata says about security: the mTLS mode and the names of the policies in force. */
function securityMetadata(wp: WorkloadPolicy): Record<string, JsonValue> {
  const m: Record<string, JsonValue> = { mtlsMode: wp.mtlsMode, policies: [...wp.deny, ...wp.allow].map(policyName) };
  if (wp.peerAuthentication) m.peerAuthentication = wp.peerAuthentication;
  return m;
}

/**
 * One filter chain per local in-mesh pod, matched on the pod's IP: RBAC filters (DENY, then ALLOW: the TCP view
 * of the pod's AuthorizationPolicies), then a tcp_proxy handing off to the original destination. A pod with
 * policies also has an HTTP chain first (inbound-http.ts: the HTTP view, per request), and the listener then
 * inspects for HTTP.
 */
export function buildInboundListener(node: string, pods: PodObject[], policies?: Map<string, WorkloadPolicy>, detectTimeoutMs?: number): Record<string, unknown> {
  let http = false;
  const chains = pods.flatMap((pod) => {
    const id = `${pod.meta.namespace}/${pod.meta.name}`;
    const wp = policies?.get(id) ?? DEFAULT_WORKLOAD_POLICY;
    const meta = { ...workloadMetadata(pod), ...securityMetadata(wp) };
    const tcp = {
      name: id,
      filter_chain_match: {
        prefix_ranges: [{ address_prefix: pod.podIP, prefix_len: { value: pod.podIP!.includes(':') ? 128 : 32 } }],
      },
      filters: [...buildRbacFilters(wp, `inbound|${id}`), tcpProxyFilter(`inbound|${id}`, INBOUND_PASSTHROUGH_CLUSTER)],
      metadata: nodemeshMetadata(meta),
    };
    if (!needsHttpChain(wp)) return [tcp];
    http = true;
    return [inboundHttpChain(pod, wp, meta, INBOUND_PASSTHROUGH_CLUSTER), tcp];
  });
  return {
    name: inboundListenerName(node),
    address: { socket_address: { address: '0.0.0.0', port_value: INBOUND_PORT } },
    traffic_direction: 'INBOUND',
    bind_to_port: { value: false },
    ...(http ? httpInspection(detectTimeoutMs) : {}),
    filter_chains: chains,
    metadata: nodemeshMetadata({ node }),
  };
}

export function buildWorkloadsCluster(): Record<string, unknown> {
  return {
    name: WORKLOADS_CLUSTER,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: WORKLOADS_CLUSTER },
    connect_timeout: CONNECT_TIMEOUT,
    lb_policy: 'ROUND_ROBIN',
    metadata: nodemeshMetadata({ directory: true }),
  };
}

/** Every in-mesh pod at its HBONE address, one locality per node, with the identity metadata agents need. */
export function buildWorkloadsAssignment(model: MeshModel): Record<string, unknown> {
  return {
    cluster_name: WORKLOADS_CLUSTER,
    endpoints: [...model.workloadsByNode.keys()].sort().map((node) => ({
      locality: { zone: node },
      lb_endpoints: model.workloadsByNode.get(node)!.map((pod) => ({
        endpoint: { address: { socket_address: { address: pod.podIP, port_value: HBONE_PORT } } },
        health_status: 'HEALTHY',
        metadata: nodemeshMetadata({ pod: pod.meta.name, namespace: pod.meta.namespace, serviceAccount: pod.serviceAccount, node, inMesh: true }),
      })),
    })),
  };
}

export function buildInboundPassthroughCluster(): Record<string, unknown> {
  return {
    name: INBOUND_PASSTHROUGH_CLUSTER,
    type: 'ORIGINAL_DST',
    connect_timeout: CONNECT_TIMEOUT,
    lb_policy: 'CLUSTER_PROVIDED',
  };
}

/** Everything the control plane serves: resources every client sees, plus each node's own inbound Listener. */
export interface Snapshot {
  shared: Map<XdsTypeUrl, Map<string, XdsResource>>;
  inbound: Map<string, XdsResource>;
}

export interface TranslateOptions {
  /** The bound on protocol detection for `detect` ports (DEFAULT_DETECT_TIMEOUT_MS). */
  detectTimeoutMs?: number;
}

export function translate(model: MeshModel, opts: TranslateOptions = {}): Snapshot {
  const shared = new Map<XdsTypeUrl, Map<string, XdsResource>>([
    [CDS, new Map()],
    [EDS, new Map()],
    [LDS, new Map()],
    [RDS, new Map()],
  ]);
  const add = (r: XdsResource): void => void shared.get(r.typeUrl)!.set(r.name, r);
  // Without routes every HTTP port still gets its default table: all HTTP ports are served the same way.
  const routeModel = model.routes ?? buildRouteModel(model.services, [], new Map(), { hashOf: (c) => model.traffic?.clusters.get(c)?.hash });
  if (model.workloadsByNode.size > 0) {
    add(makeResource(CDS, INBOUND_PASSTHROUGH_CLUSTER, buildInboundPassthroughCluster()));
    add(makeResource(CDS, WORKLOADS_CLUSTER, buildWorkloadsCluster()));
    add(makeResource(EDS, WORKLOADS_CLUSTER, buildWorkloadsAssignment(model)));
  }
  for (const svc of model.services) {
    for (const p of svc.ports) {
      add(makeResource(CDS, p.clusterName, buildCluster(svc, p, model.traffic?.clusters.get(p.clusterName))));
      add(makeResource(EDS, p.clusterName, buildLoadAssignment(p)));
      add(makeResource(LDS, p.listenerName, buildServiceListener(svc, p)));
      const routes = routeModel.ports.get(p.clusterName);
      const proxyless = routes?.proxyless ?? { name: p.listenerName, routes: [defaultRoute(p)] };
      add(makeResource(RDS, p.listenerName, buildRouteTableConfig(proxyless, routeDomains(svc, p.port.port))));
      if (p.vipListenerName) {
        add(makeResource(LDS, p.vipListenerName, buildVipListener(svc, p, serviceMetadata(svc, p), routes, opts.detectTimeoutMs)));
        for (const t of routes ? [routes.table, ...routes.consumers.values()] : []) add(makeResource(RDS, t.name, buildRouteTableConfig(t)));
      }
    }
  }
  const inbound = new Map<string, XdsResource>();
  for (const [node, pods] of model.workloadsByNode) {
    inbound.set(node, makeResource(LDS, inboundListenerName(node), buildInboundListener(node, pods, model.policies, opts.detectTimeoutMs)));
  }
  return { shared, inbound };
}

/** The resources of one type that node `node` may see (all shared ones plus its own inbound Listener). */
export function resourcesFor(snapshot: Snapshot, typeUrl: XdsTypeUrl, node: string): Map<string, XdsResource> {
  const shared = snapshot.shared.get(typeUrl) ?? new Map<string, XdsResource>();
  if (typeUrl !== LDS) return shared;
  const own = snapshot.inbound.get(node);
  if (!own) return shared;
  const m = new Map(shared);
  m.set(own.name, own);
  return m;
}
