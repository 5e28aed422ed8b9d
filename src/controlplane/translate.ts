// Translates the mesh model into Envoy xDS v3 resources (Cluster, ClusterLoadAssignment, Listener, RouteConfiguration).

import { createHash } from 'node:crypto';
import { anyOf, encodeMessage, encodeSpliced, toStruct, type JsonValue } from '../xds/protos';
import {
  CDS,
  EDS,
  ENDPOINT_TYPE,
  HCM_TYPE,
  inboundListenerName,
  LDS,
  LISTENER_TYPE,
  METADATA_NAMESPACE,
  RDS,
  type XdsTypeUrl,
  HBONE_PORT,
  workloadsClusterName,
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
import type { PortRoutes } from './routes/route-tables';
import { diffVersions, TranslationMemo, type Changes } from './translate-memo';
import { encodedResource, makeResource, makeResources, ownBytes, type XdsResource } from './encoded-resource';

export { encodedResource, makeResource, type XdsResource };

/** Inbound capture port in each pod (ztunnel's number). */
export const INBOUND_PORT = 15006;
/** The ORIGINAL_DST cluster inbound filter chains hand connections to (Istio's name). */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const CONNECT_TIMEOUT = { seconds: 5 };

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
  const each = pods.map((pod) => inboundChains(pod, policies?.get(`${pod.meta.namespace}/${pod.meta.name}`) ?? DEFAULT_WORKLOAD_POLICY));
  return { ...inboundListenerShell(node, each.some((c) => c.http), detectTimeoutMs), filter_chains: each.flatMap((c) => c.chains) };
}

/** One pod's inbound filter chains (its HTTP chain first when it has one) and whether it has an HTTP chain. */
export function inboundChains(pod: PodObject, wp: WorkloadPolicy): { chains: Record<string, unknown>[]; http: boolean } {
  const id = `${pod.meta.namespace}/${pod.meta.name}`;
  const meta = { ...workloadMetadata(pod), ...securityMetadata(wp) };
  const tcp = {
    name: id,
    filter_chain_match: {
      prefix_ranges: [{ address_prefix: pod.podIP, prefix_len: { value: pod.podIP!.includes(':') ? 128 : 32 } }],
    },
    filters: [...buildRbacFilters(wp, `inbound|${id}`), tcpProxyFilter(`inbound|${id}`, INBOUND_PASSTHROUGH_CLUSTER)],
    metadata: nodemeshMetadata(meta),
  };
  if (!needsHttpChain(wp)) return { chains: [tcp], http: false };
  return { chains: [inboundHttpChain(pod, wp, meta, INBOUND_PASSTHROUGH_CLUSTER), tcp], http: true };
}

/** The node's inbound Listener without its filter chains. */
export function inboundListenerShell(node: string, http: boolean, detectTimeoutMs?: number): Record<string, unknown> {
  return {
    name: inboundListenerName(node),
    address: { socket_address: { address: '0.0.0.0', port_value: INBOUND_PORT } },
    traffic_direction: 'INBOUND',
    bind_to_port: { value: false },
    ...(http ? httpInspection(detectTimeoutMs) : {}),
    metadata: nodemeshMetadata({ node }),
  };
}

/** The workload directory's cluster for `node`'s in-mesh pods (nothing routes to it: it carries identities). */
export function buildWorkloadsCluster(node: string): Record<string, unknown> {
  const name = workloadsClusterName(node);
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: name },
    connect_timeout: CONNECT_TIMEOUT,
    lb_policy: 'ROUND_ROBIN',
    metadata: nodemeshMetadata({ directory: true, node }),
  };
}

/** `node`'s in-mesh pods at their HBONE address, with the identity metadata agents need. */
export function buildWorkloadsAssignment(node: string, pods: PodObject[]): Record<string, unknown> {
  return {
    cluster_name: workloadsClusterName(node),
    endpoints: [{ locality: { zone: node }, lb_endpoints: pods.map((pod) => directoryEndpoint(pod, node)) }],
  };
}

function directoryEndpoint(pod: PodObject, node: string): Record<string, unknown> {
  return {
    endpoint: { address: { socket_address: { address: pod.podIP, port_value: HBONE_PORT } } },
    health_status: 'HEALTHY',
    metadata: nodemeshMetadata({ pod: pod.meta.name, namespace: pod.meta.namespace, serviceAccount: pod.serviceAccount, node, inMesh: true }),
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

/** Everything the control plane serves: resources every client may see, plus each node's own inbound Listener. */
export interface Snapshot {
  /** Counts builds (of one TranslationMemo). */
  generation: number;
  shared: Map<XdsTypeUrl, Map<string, XdsResource>>;
  /** Node name -> its inbound Listener. */
  inbound: Map<string, XdsResource>;
  /** Shared Listeners only proxyless gRPC clients use (API listeners): agents are not sent them. */
  proxylessOnly: Set<string>;
  /** What changed since the snapshot of generation `since` (the one served before); absent for a first build. */
  changes?: { since: number; shared: Map<XdsTypeUrl, Changes>; inbound: Changes };
}

export interface TranslateOptions {
  /** The bound on protocol detection for `detect` ports (DEFAULT_DETECT_TIMEOUT_MS). */
  detectTimeoutMs?: number;
}

/** Every resource of one Service: what `translate` memoizes per Service, so it must read only its arguments. */
export function serviceResources(
  svc: ServiceModel,
  routesOf: (p: ServicePortModel) => PortRoutes | undefined,
  opts: TranslateOptions,
  trafficOf: (p: ServicePortModel) => ClusterTraffic | undefined = () => undefined,
): XdsResource[] {
  const out: { typeUrl: XdsTypeUrl; name: string; message: Record<string, unknown> }[] = [];
  const add = (typeUrl: XdsTypeUrl, name: string, message: Record<string, unknown>): void => void out.push({ typeUrl, name, message });
  for (const p of svc.ports) {
    add(CDS, p.clusterName, buildCluster(svc, p, trafficOf(p)));
    add(EDS, p.clusterName, buildLoadAssignment(p));
    add(LDS, p.listenerName, buildServiceListener(svc, p));
    const routes = routesOf(p);
    const proxyless = routes?.proxyless ?? { name: p.listenerName, routes: [defaultRoute(p)] };
    add(RDS, p.listenerName, buildRouteTableConfig(proxyless, routeDomains(svc, p.port.port)));
    if (p.vipListenerName) {
      add(LDS, p.vipListenerName, buildVipListener(svc, p, serviceMetadata(svc, p), routes, opts.detectTimeoutMs));
      for (const t of routes ? [routes.table, ...routes.consumers.values()] : []) add(RDS, t.name, buildRouteTableConfig(t));
    }
  }
  // The Service's resources are rebuilt together, so their bytes share one allocation.
  return makeResources(out);
}

/** A piece's bytes and their digest (what the piece that splices it is keyed on). */
interface Encoded {
  bytes: Buffer[];
  digest: string;
}

function encoded(parts: Buffer[]): Encoded {
  const h = createHash('sha1');
  for (const b of parts) h.update(b);
  return { bytes: ownBytes(parts), digest: h.digest('base64') };
}

/**
 * The model as xDS resources. With `memo` (the control plane keeps one), pieces whose inputs did not change
 * since the last build are reused, not encoded again: a Service's resources, a pod's inbound filter chains
 * and directory entry, an address's workload, a node's inbound Listener. `prev` (the last snapshot) gives
 * the new one its generation and `changes`.
 */
export function translate(model: MeshModel, opts: TranslateOptions = {}, memo = new TranslationMemo(), prev?: Snapshot): Snapshot {
  const generation = memo.begin();
  const shared = new Map<XdsTypeUrl, Map<string, XdsResource>>([
    [CDS, new Map()],
    [EDS, new Map()],
    [LDS, new Map()],
    [RDS, new Map()],
  ]);
  const add = (r: XdsResource): void => void shared.get(r.typeUrl)!.set(r.name, r);
  // Without routes every HTTP port still gets its default table: all HTTP ports are served the same way.
  const routeModel = model.routes ?? buildRouteModel(model.services, [], new Map(), { hashOf: (c) => model.traffic?.clusters.get(c)?.hash });
  const detect = opts.detectTimeoutMs;
  // The workload directory and the inbound Listeners read only the workloads, their policies and `detect`: when
  // the model hands out the same objects (ModelCache), the whole section is what it was.
  const workloads = memo.section(
    'workloads',
    [model.workloadsByNode, model.policies, detect],
    () => ({ directory: workloadDirectory(model, memo), inbound: inboundListeners(model, detect, memo) }),
    ['cds:passthrough', 'cds:dir:', 'eds:dir:', 'dir:', 'chains:', 'inbound:'],
  );
  for (const r of workloads.directory) add(r);
  const proxylessOnly = new Set<string>();
  for (const svc of model.services) {
    for (const p of svc.ports) proxylessOnly.add(p.listenerName);
    const routes = new Map(svc.ports.map((p) => [p.clusterName, routeModel.ports.get(p.clusterName)]));
    // Route tables hold a Map of consumer tables: given as entries, so the fingerprint sees them.
    const routeInputs = (): unknown[] => [...routes.values()].map((r) => r && [r.table, [...r.consumers], r.proxyless]);
    // A DestinationRule's policy for the Service's clusters is an input too. The model's sources compare by
    // identity; route tables and traffic policies compare as text, made again only for objects not handed out
    // last time (the tables of ports without routes are: DefaultTableCache).
    const traffic = svc.ports.map((p) => model.traffic?.clusters.get(p.clusterName));
    const same = svc.sources && [
      ...svc.sources,
      ...svc.ports.map((p) => {
        const r = routes.get(p.clusterName);
        return memo.text(`routes:${p.clusterName}`, r, () => JSON.stringify(r && [r.table, [...r.consumers], r.proxyless]));
      }),
      JSON.stringify(traffic),
      detect,
    ];
    const build = (): XdsResource[] => serviceResources(svc, (p) => routes.get(p.clusterName), opts, (p) => model.traffic?.clusters.get(p.clusterName));
    const inputs = (): unknown[] => {
      const { sources: _, ...svcInputs } = svc;
      return [svcInputs, routeInputs(), detect, traffic];
    };
    for (const r of memo.once(`svc:${svc.namespace}/${svc.name}`, inputs, build, same)) add(r);
  }
  memo.sweep();
  const snapshot: Snapshot = { generation, shared, inbound: workloads.inbound, proxylessOnly };
  if (prev) {
    snapshot.changes = {
      since: prev.generation,
      shared: new Map(XDS_TYPES.map((t) => [t, diffVersions(prev.shared.get(t), shared.get(t)!)])),
      inbound: diffVersions(prev.inbound, workloads.inbound),
    };
  }
  return snapshot;
}

/** The ORIGINAL_DST cluster and each node's part of the workload directory. */
function workloadDirectory(model: MeshModel, memo: TranslationMemo): XdsResource[] {
  if (model.workloadsByNode.size === 0) return [];
  const out = [memo.once('cds:passthrough', [], () => makeResource(CDS, INBOUND_PASSTHROUGH_CLUSTER, buildInboundPassthroughCluster()))];
  for (const node of [...model.workloadsByNode.keys()].sort()) out.push(...directory(node, model.workloadsByNode.get(node)!, memo));
  return out;
}

/** Each node's inbound Listener, spliced from its pods' filter chains. */
function inboundListeners(model: MeshModel, detect: number | undefined, memo: TranslationMemo): Map<string, XdsResource> {
  const inbound = new Map<string, XdsResource>();
  for (const [node, list] of model.workloadsByNode) {
    const chains = list.map((pod) => {
      const wp = model.policies?.get(`${pod.meta.namespace}/${pod.meta.name}`) ?? DEFAULT_WORKLOAD_POLICY;
      // The store's pod object is kept while the pod is unchanged, and without policies every pod shares
      // DEFAULT_WORKLOAD_POLICY: both compare by identity. A policy object rebuilt each time is fingerprinted.
      return memo.once(
        `chains:${pod.meta.namespace}/${pod.meta.name}`,
        [pod, wp],
        () => {
          const c = inboundChains(pod, wp);
          return { ...encoded(c.chains.map((chain) => encodeMessage(FILTER_CHAIN_TYPE, chain))), http: c.http };
        },
        [pod, wp],
      );
    });
    const http = chains.some((c) => c.http);
    inbound.set(
      node,
      memo.once(
        `inbound:${node}`,
        [node, http, detect, chains.map((c) => c.digest)],
        () => encodedResource(LDS, inboundListenerName(node), encodeSpliced(LISTENER_TYPE, inboundListenerShell(node, http, detect), 'filter_chains', chains.flatMap((c) => c.bytes))),
        [node, http, detect, ...chains],
      ),
    );
  }
  return inbound;
}

const XDS_TYPES: XdsTypeUrl[] = [CDS, EDS, LDS, RDS];
const FILTER_CHAIN_TYPE = 'envoy.config.listener.v3.FilterChain';
const LOCALITY_TYPE = 'envoy.config.endpoint.v3.LocalityLbEndpoints';
const LB_ENDPOINT_TYPE = 'envoy.config.endpoint.v3.LbEndpoint';

/**
 * The workload directory of one node, spliced from each pod's entry so one pod's change re-encodes one entry
 * and re-sends one node's part of the directory, never the whole cluster's.
 */
function directory(node: string, pods: PodObject[], memo: TranslationMemo): XdsResource[] {
  const entries = pods.map((pod) =>
    memo.once(
      `dir:${pod.meta.namespace}/${pod.meta.name}`,
      [pod.podIP, pod.meta.name, pod.meta.namespace, pod.serviceAccount, node],
      () => encoded([encodeMessage(LB_ENDPOINT_TYPE, directoryEndpoint(pod, node))]),
      [pod, node],
    ),
  );
  const name = workloadsClusterName(node);
  const part = (): XdsResource =>
    encodedResource(
      EDS,
      name,
      encodeSpliced(ENDPOINT_TYPE, { cluster_name: name }, 'endpoints', [
        encodeSpliced(LOCALITY_TYPE, { locality: { zone: node } }, 'lb_endpoints', entries.flatMap((e) => e.bytes)),
      ]),
    );
  return [
    memo.once(`cds:dir:${node}`, [node], () => makeResource(CDS, name, buildWorkloadsCluster(node)), [node]),
    memo.once(`eds:dir:${node}`, [node, entries.map((e) => e.digest)], part, [node, ...entries]),
  ];
}

/**
 * Who asks: the node a client runs on, and whether it is a nodemesh agent. An agent sees its own node's inbound
 * Listener and none of another node's, and not the API listeners only proxyless gRPC clients use.
 */
export interface ClientScope {
  node: string;
  agent?: boolean;
}

/** The resources of one type that `scope` may see. */
export function resourcesFor(snapshot: Snapshot, typeUrl: XdsTypeUrl, scope: ClientScope | string): Map<string, XdsResource> {
  const { node, agent } = typeof scope === 'string' ? { node: scope, agent: false } : scope;
  const shared = snapshot.shared.get(typeUrl) ?? new Map<string, XdsResource>();
  if (typeUrl !== LDS) return shared;
  const m = agent ? new Map([...shared].filter(([n]) => !snapshot.proxylessOnly.has(n))) : new Map(shared);
  const own = snapshot.inbound.get(node);
  if (own) m.set(own.name, own);
  return m;
}

/** One resource of `typeUrl` by name, as `scope` may see it (undefined: none, or not for this client). */
export function resourceFor(snapshot: Snapshot, typeUrl: XdsTypeUrl, name: string, scope: ClientScope): XdsResource | undefined {
  const r = snapshot.shared.get(typeUrl)?.get(name);
  if (typeUrl !== LDS) return r;
  if (r) return scope.agent && snapshot.proxylessOnly.has(name) ? undefined : r;
  const own = snapshot.inbound.get(scope.node);
  return own?.name === name ? own : undefined;
}
