// GAMMA: which routes attach to which Service port, the route tables that follow (Gateway API precedence,
// producer and consumer tables, the default table), what proxyless clients may see, and every route's status.

import { DEFAULT_ROUTE_RETRY, type Route, type RouteAction, type RouteMatch, type RoutePolicy, type RouteTable, type WeightedBackend } from '../../state/routes';
import { INVALID_BACKEND_PREFIX, routeTableName } from '../../xds/resource-types';
import type { ConfigIssue } from '../errors';
import type { ServiceModel, ServicePortModel } from '../model';
import type { Kind, ObjectOrigin, StoredObject } from '../objects';
import { orderMatches } from './precedence';
import { routable } from './protocol';
import type { BackendRef, ParentRef, RouteObject, RouteRule } from './route-objects';
import { condition, describeParent, invalidCondition, ROUTE_CONTROLLER, type RouteCondition, type RouteStatus } from './route-status';

/** The route tables of one Service port the agent parses as HTTP (declared or detected). */
export interface PortRoutes {
  /** For clients in namespaces without consumer routes: the producer routes, or the default route. */
  table: RouteTable;
  /** GAMMA consumer routes: a client namespace's own table (only its routes), by namespace. */
  consumers: Map<string, RouteTable>;
  /**
   * The RouteConfiguration proxyless gRPC clients read (`HOST:PORT`): the producer table when every route in
   * it is something grpc-js-xds honours as written (forwarding to existing clusters with weights, path and
   * header matches), else the default route. Never a partial table: a dropped route would send its requests
   * to whichever route comes next.
   */
  proxyless: RouteTable;
}

export interface RouteModel {
  /** By the Service port's cluster name; only ports whose protocol is not tcp. */
  ports: Map<string, PortRoutes>;
  /** Every HTTPRoute and GRPCRoute, sorted by key. */
  status: RouteStatus[];
}

/**
 * The tables of ports no route attaches to, kept from one build to the next (the control plane holds one):
 * such a port's tables depend only on its names and its cluster's hash key, so while those are the same the
 * same objects are handed out, and translation sees by identity that nothing changed.
 */
export class DefaultTableCache {
  private prev = new Map<string, { key: string; routes: PortRoutes }>();
  private next = new Map<string, { key: string; routes: PortRoutes }>();

  get(cluster: string, key: string, build: () => PortRoutes): PortRoutes {
    const hit = this.prev.get(cluster);
    const e = hit && hit.key === key ? hit : { key, routes: build() };
    this.next.set(cluster, e);
    return e.routes;
  }

  /** Ends a build: keeps only the ports it saw. */
  sweep(): void {
    this.prev = this.next;
    this.next = new Map();
  }
}

export interface StoredRoute {
  object: RouteObject;
  origin: ObjectOrigin;
}

/** The HTTPRoutes and GRPCRoutes a store serves (for buildRouteModel). */
export function storedRoutes(store: { list(kind: Kind): StoredObject[] }): StoredRoute[] {
  return [...store.list('HTTPRoute'), ...store.list('GRPCRoute')].map((s) => ({ object: s.object as RouteObject, origin: s.origin }));
}

/** The store's current issues by object key (for buildRouteModel: routes whose latest version is invalid). */
export function invalidIssues(bySource: Record<string, ConfigIssue[]>): Map<string, ConfigIssue[]> {
  const out = new Map<string, ConfigIssue[]>();
  for (const issues of Object.values(bySource)) {
    for (const i of issues) {
      // A duplicate is not an invalid version of the object: its first copy is what runs.
      if (!i.key || i.message.startsWith('duplicate of')) continue;
      const list = out.get(i.key) ?? [];
      list.push(i);
      out.set(i.key, list);
    }
  }
  return out;
}

/** The one route of a port without routes: everything to the Service's own cluster. */
export function defaultRoute(p: ServicePortModel): Route {
  return {
    name: 'default',
    source: { kind: 'default', namespace: '', name: '' },
    matches: [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }],
    action: { kind: 'forward', backends: [{ cluster: p.clusterName, weight: 1 }] },
  };
}

interface Resolved {
  backend: WeightedBackend;
  /** ResolvedRefs reason when the reference is not usable. */
  problem?: 'BackendNotFound' | 'InvalidKind';
}

/** What the rules' policies need from other objects: FaultInjections by `ns/name`, each cluster's hash key. */
export interface RouteModelExtras {
  faults?: Map<string, NonNullable<RoutePolicy['fault']>>;
  /** The consistent-hash key of a cluster's DestinationRule (its routes carry it as hash_policy). */
  hashOf?: (cluster: string) => RoutePolicy['hash'] | undefined;
}

class Services {
  private readonly byName = new Map<string, ServiceModel>();

  constructor(
    services: ServiceModel[],
    readonly extras: RouteModelExtras = {},
  ) {
    for (const s of services) this.byName.set(`${s.namespace}/${s.name}`, s);
  }

  fault(ref: NonNullable<RouteRule['fault']>): NonNullable<RoutePolicy['fault']> | undefined {
    return this.extras.faults?.get(`${ref.namespace}/${ref.name}`);
  }

  get(namespace: string, name: string): ServiceModel | undefined {
    return this.byName.get(`${namespace}/${name}`);
  }

  resolve(b: BackendRef): Resolved {
    const invalid = (problem: Resolved['problem'], why: string): Resolved => {
      const backend: WeightedBackend = { cluster: INVALID_BACKEND_PREFIX + why, weight: b.weight, invalid: why };
      return { backend: withHeaders(backend, b), problem };
    };
    if (b.group !== '' || b.kind !== 'Service') return invalid('InvalidKind', `backendRef ${b.kind}${b.group ? `.${b.group}` : ''} ${b.namespace}/${b.name} is not a Service`);
    const svc = this.get(b.namespace, b.name);
    if (!svc) return invalid('BackendNotFound', `Service ${b.namespace}/${b.name} not found`);
    const port = svc.ports.find((p) => p.port.port === b.port);
    if (!port) return invalid('BackendNotFound', `Service ${b.namespace}/${b.name} has no TCP port ${b.port}`);
    return { backend: withHeaders({ cluster: port.clusterName, weight: b.weight }, b) };
  }
}

function withHeaders(w: WeightedBackend, b: BackendRef): WeightedBackend {
  if (b.requestHeaders) w.requestHeaders = b.requestHeaders;
  if (b.responseHeaders) w.responseHeaders = b.responseHeaders;
  return w;
}

/**
 * What a rule does. With backends: forward (weights as written, 0 included; an unusable backendRef keeps its
 * share, which fails). Without a usable share (no backendRefs, every weight 0, every backendRef unusable) the
 * rule answers itself: 500 for HTTPRoute, 503 for GRPCRoute (gRPC clients read 503 as UNAVAILABLE, which
 * Gateway API asks for).
 */
function ruleAction(route: RouteObject, rule: RouteRule, services: Services): RouteAction {
  if (rule.redirect) return { kind: 'redirect', redirect: rule.redirect };
  const status = route.kind === 'GRPCRoute' ? 503 : 500;
  // Gateway API: a filter that cannot be resolved is not skipped; the requests it would see get an error.
  if (rule.fault && !services.fault(rule.fault)) return { kind: 'respond', status, body: `FaultInjection ${rule.fault.namespace}/${rule.fault.name} not found` };
  if (rule.backends.length === 0) return { kind: 'respond', status, body: 'this route rule has no backendRefs' };
  const backends = rule.backends.map((b) => services.resolve(b).backend);
  if (backends.every((b) => b.weight === 0)) return { kind: 'respond', status, body: 'every backendRef of this route rule has weight 0' };
  if (backends.every((b) => b.invalid)) return { kind: 'respond', status, body: backends.map((b) => b.invalid).join('; ') };
  // One plain backend: Envoy's `cluster` (its weight says nothing then).
  if (backends.length === 1 && !backends[0]!.invalid && !backends[0]!.requestHeaders && !backends[0]!.responseHeaders) backends[0]!.weight = 1;
  const action: RouteAction = { kind: 'forward', backends };
  if (rule.rewrite) action.rewrite = rule.rewrite;
  return action;
}

/**
 * What the rule asks of the resilience layers. A rule with `retry` retries connection failures, resets and
 * per-try timeouts (Gateway API: implementations SHOULD), plus the codes it lists; a rule with only
 * timeouts.backendRequest keeps the default retries, written out so the wire says what the agent does.
 */
function rulePolicy(rule: RouteRule, action: RouteAction, services: Services): RoutePolicy | undefined {
  const p: RoutePolicy = {};
  if (rule.timeouts?.requestMs !== undefined) p.timeoutMs = rule.timeouts.requestMs;
  if (rule.timeouts?.backendRequestMs !== undefined) p.perTryTimeoutMs = rule.timeouts.backendRequestMs;
  if (rule.retry) {
    const on = ['connect-failure', 'refused-stream', 'reset'];
    if (rule.retry.codes.length > 0) on.push('retriable-status-codes');
    p.retry = { attempts: rule.retry.attempts ?? DEFAULT_ROUTE_RETRY.attempts, on, codes: rule.retry.codes };
    if (rule.retry.backoffMs !== undefined) p.retry.backoffBaseMs = rule.retry.backoffMs;
  } else if (p.perTryTimeoutMs !== undefined) p.retry = { ...DEFAULT_ROUTE_RETRY, on: [...DEFAULT_ROUTE_RETRY.on], codes: [...DEFAULT_ROUTE_RETRY.codes] };
  if (action.kind !== 'forward') return Object.keys(p).length > 0 ? p : undefined;
  const mirrors = (rule.mirrors ?? []).flatMap((m) => {
    const r = services.resolve(m.backend);
    return r.problem ? [] : [{ cluster: r.backend.cluster, fraction: m.fraction }];
  });
  if (mirrors.length > 0) p.mirrors = mirrors;
  const fault = rule.fault && services.fault(rule.fault);
  if (fault) p.fault = fault;
  const hash = hashFor(action, services);
  if (hash) p.hash = hash;
  return Object.keys(p).length > 0 ? p : undefined;
}

/** The hash key of the first backend whose cluster has one (Istio applies the destination's consistentHash). */
function hashFor(action: Extract<RouteAction, { kind: 'forward' }>, services: Services): RoutePolicy['hash'] | undefined {
  for (const b of action.backends) {
    const h = b.invalid ? undefined : services.extras.hashOf?.(b.cluster);
    if (h) return h;
  }
  return undefined;
}

/** `rule-N` (N: position in spec.rules), or the rule's own name. */
export function ruleId(rule: RouteRule): string {
  return rule.name ?? `rule-${rule.index}`;
}

function buildTable(name: string, routes: RouteObject[], services: Services, port: ServicePortModel): RouteTable {
  if (routes.length === 0) {
    const r = defaultRoute(port);
    const hash = services.extras.hashOf?.(port.clusterName);
    if (hash) r.policy = { hash };
    return { name, routes: [r] };
  }
  const out: Route[] = [];
  for (const m of orderMatches(routes)) {
    const rule = m.route.rules[m.rule]!;
    const id = ruleId(rule);
    const r: Route = {
      name: `${m.route.meta.namespace}/${m.route.meta.name}/${id}`,
      source: { kind: m.route.kind, namespace: m.route.meta.namespace, name: m.route.meta.name, rule: id },
      matches: [rule.matches[m.match] as RouteMatch],
      action: ruleAction(m.route, rule, services),
    };
    if (rule.requestHeaders) r.requestHeaders = rule.requestHeaders;
    if (rule.responseHeaders) r.responseHeaders = rule.responseHeaders;
    const policy = rulePolicy(rule, r.action, services);
    if (policy) r.policy = policy;
    out.push(r);
  }
  return { name, routes: out };
}

/** A route grpc-js-xds applies exactly as written (anything else it ignores or rejects). */
function proxylessSafe(r: Route): boolean {
  if (r.action.kind !== 'forward' || r.action.rewrite || r.requestHeaders || r.responseHeaders || r.policy) return false;
  if (r.action.backends.some((b) => b.invalid || b.requestHeaders || b.responseHeaders)) return false;
  if (r.action.backends.reduce((n, b) => n + b.weight, 0) === 0) return false;
  // gRPC skips routes with query matches (A28) instead of applying them.
  return r.matches.every((m) => m.query.length === 0);
}

interface Attachment {
  route: StoredRoute;
  ref: ParentRef;
  refIndex: number;
  svc?: ServiceModel;
  /** Ports the parentRef selects (before conflicts and protocol are considered). */
  ports: ServicePortModel[];
  /** Ports where the route ended up in a table. */
  accepted: ServicePortModel[];
  notes: string[];
}

/** The Service ports a parentRef selects: `port` and/or `sectionName` (the port's name), else every port. */
function selectPorts(ref: ParentRef, svc: ServiceModel): ServicePortModel[] {
  return svc.ports.filter((p) => (ref.port === undefined || p.port.port === ref.port) && (ref.sectionName === undefined || p.port.name === ref.sectionName));
}

/**
 * Builds every HTTP port's tables and every route's status. `invalid` holds the issues of routes whose latest
 * version failed validation (by key); `routes` holds what the store serves (their last good versions included).
 */
export function buildRouteModel(
  services: ServiceModel[],
  routes: StoredRoute[],
  invalid: Map<string, ConfigIssue[]> = new Map(),
  extras: RouteModelExtras = {},
  cache?: DefaultTableCache,
): RouteModel {
  const index = new Services(services, extras);
  const attachments: Attachment[] = [];
  // Per port cluster: producer routes and consumer routes per namespace, each split by kind.
  const groups = new Map<string, Map<string, { http: StoredRoute[]; grpc: StoredRoute[]; atts: Attachment[] }>>();
  const PRODUCER = '';
  for (const sr of routes) {
    const route = sr.object;
    route.parentRefs.forEach((ref, refIndex) => {
      if (ref.group !== '' || ref.kind !== 'Service') return;
      const svc = index.get(ref.namespace, ref.name);
      const att: Attachment = { route: sr, ref, refIndex, svc, ports: svc ? selectPorts(ref, svc) : [], accepted: [], notes: [] };
      attachments.push(att);
      if (!svc || !svc.vip) return;
      const group = route.meta.namespace === svc.namespace ? PRODUCER : route.meta.namespace;
      for (const p of att.ports) {
        if (!routable(p.protocol)) {
          att.notes.push(`port ${p.port.port} is declared tcp (${p.port.appProtocol ? `appProtocol ${p.port.appProtocol}` : `name ${p.port.name}`}): routes apply to http, http2, grpc and undeclared ports`);
          continue;
        }
        const byGroup = groups.get(p.clusterName) ?? new Map();
        groups.set(p.clusterName, byGroup);
        const g = byGroup.get(group) ?? { http: [], grpc: [], atts: [] };
        byGroup.set(group, g);
        if (!g.http.includes(sr) && !g.grpc.includes(sr)) (route.kind === 'GRPCRoute' ? g.grpc : g.http).push(sr);
        g.atts.push(att);
      }
    });
  }

  const ports = new Map<string, PortRoutes>();
  for (const svc of services) {
    if (!svc.vip) continue;
    for (const p of svc.ports) {
      if (!routable(p.protocol)) continue;
      const attached = groups.get(p.clusterName);
      const byGroup = attached ?? new Map<string, { http: StoredRoute[]; grpc: StoredRoute[]; atts: Attachment[] }>();
      const tableFor = (group: string): RouteTable => {
        const g = byGroup.get(group);
        const name = routeTableName(svc.host, p.port.port, group || undefined);
        if (!g) return buildTable(name, [], index, p);
        // GEP-1294: when both kinds attach to one Service port, GRPCRoute wins and the HTTPRoutes are not used.
        const used = g.grpc.length > 0 ? g.grpc : g.http;
        for (const att of g.atts) {
          if (used.includes(att.route)) att.accepted.push(p);
          else att.notes.push(`port ${p.port.port}: GRPCRoutes attach to it too, and GRPCRoute takes precedence over HTTPRoute (GEP-1294)`);
        }
        return buildTable(name, used.map((x) => x.object), index, p);
      };
      const build = (): PortRoutes => {
        const table = tableFor(PRODUCER);
        const consumers = new Map<string, RouteTable>();
        for (const group of [...byGroup.keys()].sort()) if (group !== PRODUCER) consumers.set(group, tableFor(group));
        const proxyless: RouteTable = {
          name: p.listenerName,
          routes: table.routes.every(proxylessSafe) ? table.routes : [defaultRoute(p)],
        };
        return { table, consumers, proxyless };
      };
      if (attached || !cache) {
        ports.set(p.clusterName, build());
        continue;
      }
      // No route attaches: the tables follow from the names and the hash key alone (buildTable's first case).
      const hash = extras.hashOf?.(p.clusterName);
      const key = `${svc.host} ${p.port.port} ${p.listenerName} ${hash === undefined ? '' : JSON.stringify(hash)}`;
      ports.set(p.clusterName, cache.get(p.clusterName, key, build));
    }
  }
  cache?.sweep();
  return { ports, status: statuses(routes, attachments, invalid, index) };
}

function attachmentConditions(att: Attachment, index: Services, generation?: number): RouteCondition[] {
  const where = describeParent(att.ref);
  let accepted: RouteCondition;
  if (!att.svc) accepted = condition('Accepted', false, 'NoMatchingParent', `${where}: the Service does not exist`, generation);
  else if (!att.svc.vip) accepted = condition('Accepted', false, 'NoMatchingParent', `${where}: the Service is headless (clusterIP: None); routes apply to a Service's cluster IP`, generation);
  else if (att.ports.length === 0) accepted = condition('Accepted', false, 'NoMatchingParent', `${where}: the Service has no such TCP port`, generation);
  else if (att.accepted.length === 0) {
    const conflicted = att.notes.some((n) => n.includes('GEP-1294'));
    accepted = condition('Accepted', false, conflicted ? 'Conflicted' : 'NoMatchingParent', `${where}: ${att.notes.join('; ')}`, generation);
  } else {
    const ports = att.accepted.map((p) => p.port.port).join(', ');
    const more = att.notes.length > 0 ? `; ${att.notes.join('; ')}` : '';
    accepted = condition('Accepted', true, 'Accepted', `attached to Service ${att.svc.namespace}/${att.svc.name} port ${ports}${more}`, generation);
  }
  // ResolvedRefs covers every backendRef of the route, whatever the parent.
  const problems = new Map<string, string[]>();
  const note = (problem: string, what: string): void => void problems.set(problem, [...(problems.get(problem) ?? []), what]);
  for (const rule of att.route.object.rules) {
    for (const b of rule.backends) {
      const r = index.resolve(b);
      if (r.problem) note(r.problem, `${r.backend.invalid!} (its share of requests is answered with an error)`);
    }
    for (const m of rule.mirrors ?? []) {
      const r = index.resolve(m.backend);
      if (r.problem) note(r.problem, `RequestMirror: ${r.backend.invalid!} (its copies are not sent)`);
    }
    if (rule.fault && !index.fault(rule.fault)) note('BackendNotFound', `ExtensionRef: FaultInjection ${rule.fault.namespace}/${rule.fault.name} not found (the rule answers 500)`);
  }
  let resolved: RouteCondition;
  if (problems.size === 0) resolved = condition('ResolvedRefs', true, 'ResolvedRefs', 'every reference names an existing object', generation);
  else {
    // InvalidKind before BackendNotFound: a kind nodemesh cannot use will not start existing.
    const reason = problems.has('InvalidKind') ? 'InvalidKind' : 'BackendNotFound';
    const all = [...new Set([...problems.values()].flat())];
    resolved = condition('ResolvedRefs', false, reason, all.join('; '), generation);
  }
  return [accepted, resolved];
}

function statuses(routes: StoredRoute[], attachments: Attachment[], invalid: Map<string, ConfigIssue[]>, index: Services): RouteStatus[] {
  const out = new Map<string, RouteStatus>();
  for (const sr of routes) {
    const r = sr.object;
    const key = `${r.kind}/${r.meta.namespace}/${r.meta.name}`;
    const s: RouteStatus = { key, kind: r.kind, namespace: r.meta.namespace, name: r.meta.name, origin: { file: sr.origin.file, line: sr.origin.line }, parents: [] };
    if (r.generation !== undefined) s.generation = r.generation;
    const issues = invalid.get(key);
    if (issues) s.invalid = issues;
    for (const att of attachments.filter((a) => a.route === sr)) {
      const conditions = attachmentConditions(att, index, r.generation);
      // The last good version runs, but what was written last is what the status answers for.
      if (issues) conditions[0] = invalidCondition(issues, true, r.generation);
      s.parents.push({ parentRef: att.ref, controllerName: ROUTE_CONTROLLER, conditions });
    }
    out.set(key, s);
  }
  for (const [key, issues] of invalid) {
    if (out.has(key) || !/^(HTTPRoute|GRPCRoute)\//.test(key)) continue;
    const [kind, namespace, name] = key.split('/') as [RouteStatus['kind'], string, string];
    out.set(key, { key, kind, namespace, name, origin: { file: issues[0]!.file, line: issues[0]!.line }, invalid: issues, parents: [] });
  }
  return [...out.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
