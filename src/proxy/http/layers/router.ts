// Router (source agent): picks the request's route from its Service port's table (GAMMA consumer table for
// the client's namespace, else the producer's), then does what the route says: forward to a weighted
// backend (header mutations, URL rewrite), redirect, or answer. No route matches: 404.

import type { HeaderMutation, Redirect, Route, RouteMatch, RouteStore, RouteTable, UrlRewrite, WeightedBackend } from '../../../state/routes';
import type { ServiceStore } from '../../../state/services';
import { headerValue } from '../headers';
import { localReply, type Headers, type L7Request, type L7Response, type Layer, type RequestContext } from '../request';

/** A request attribute test, built once per table. */
type Test = (req: L7Request, path: string, query: URLSearchParams | null) => boolean;

interface CompiledRoute {
  route: Route;
  /** ORed; empty matches everything. */
  tests: Test[];
  /** The PathPrefix of the match that matched, for ReplacePrefixMatch. */
  prefixes: (string | null)[];
  /** Smooth weighted round robin over the forward action's backends (exact proportions, even over few requests). */
  wrr: { current: number[]; total: number } | null;
}

interface CompiledTable {
  routes: CompiledRoute[];
}

function fullMatch(re: string): RegExp {
  return new RegExp(`^(?:${re})$`);
}

/** Gateway API PathPrefix: element-wise (`/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`). */
export function prefixMatches(prefix: string, path: string): boolean {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (p === '/') return true;
  return path === p || (path.startsWith(p) && path[p.length] === '/');
}

function compileMatch(m: RouteMatch): Test {
  const tests: Test[] = [];
  if (m.path) {
    const { kind, value } = m.path;
    if (kind === 'exact') tests.push((_r, path) => path === value);
    else if (kind === 'prefix') tests.push((_r, path) => prefixMatches(value, path));
    else {
      const re = fullMatch(value);
      tests.push((_r, path) => re.test(path));
    }
  }
  if (m.method) {
    const method = m.method;
    tests.push((r) => r.method === method);
  }
  for (const h of m.headers) {
    const name = h.name.toLowerCase();
    let t: (v: string | undefined) => boolean;
    if (h.kind === 'present') t = (v) => v !== undefined;
    else if (h.kind === 'exact') t = (v) => v === h.value;
    else {
      const re = fullMatch(h.value);
      t = (v) => v !== undefined && re.test(v);
    }
    const invert = h.invert === true;
    // `host` is not among the headers: the codecs moved it to `authority`.
    tests.push(name === 'host' ? (r) => t(r.authority) !== invert : (r) => t(headerValue(r.headers, name)) !== invert);
  }
  for (const q of m.query) {
    let t: (v: string | null) => boolean;
    if (q.kind === 'present') t = (v) => v !== null;
    else if (q.kind === 'exact') t = (v) => v === q.value;
    else {
      const re = fullMatch(q.value);
      t = (v) => v !== null && re.test(v);
    }
    // Gateway API: with repeated parameters, the first one counts.
    tests.push((_r, _p, query) => t(query === null ? null : query.get(q.name)));
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (r, p, q) => tests.every((t) => t(r, p, q));
}

function compileTable(t: RouteTable): CompiledTable {
  return {
    routes: t.routes.map((route) => ({
      route,
      tests: route.matches.map(compileMatch),
      prefixes: route.matches.map((m) => (m.path?.kind === 'prefix' ? m.path.value : null)),
      wrr: route.action.kind === 'forward' && route.action.backends.length > 1 ? { current: route.action.backends.map(() => 0), total: route.action.backends.reduce((a, b) => a + b.weight, 0) } : null,
    })),
  };
}

/** The route for a default table (no HTTPRoute attached): everything to the Service's own cluster. */
function defaultRoute(cluster: string): CompiledRoute {
  const route: Route = {
    name: 'default',
    source: { kind: 'default', namespace: '', name: '' },
    matches: [],
    action: { kind: 'forward', backends: [{ cluster, weight: 1 }] },
  };
  return { route, tests: [], prefixes: [], wrr: null };
}

function pickBackend(cr: CompiledRoute, backends: WeightedBackend[]): WeightedBackend | null {
  if (backends.length === 1) return backends[0]!.weight > 0 ? backends[0]! : null;
  const w = cr.wrr!;
  if (w.total <= 0) return null;
  let best = -1;
  for (let i = 0; i < backends.length; i++) {
    w.current[i]! += backends[i]!.weight;
    if (best < 0 || w.current[i]! > w.current[best]!) best = i;
  }
  w.current[best]! -= w.total;
  return backends[best]!;
}

export function applyMutation(h: Headers, m: HeaderMutation | undefined): void {
  if (!m) return;
  for (const [k, v] of m.set) h[k] = v;
  for (const [k, v] of m.add) {
    const cur = headerValue(h, k);
    h[k] = cur === undefined ? v : `${cur},${v}`;
  }
  for (const k of m.remove) delete h[k];
}

function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q) };
}

/** ReplacePrefixMatch: the matched prefix becomes `value`, without doubling or losing the slash between. */
export function replacePrefix(path: string, prefix: string, value: string): string {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const rest = p === '/' ? path.slice(1) : path.slice(p.length).replace(/^\//, '');
  const base = value.endsWith('/') ? value.slice(0, -1) : value;
  if (rest === '') return base === '' ? '/' : value === '/' ? '/' : base;
  return `${base}/${rest}`;
}

function rewritePath(path: string, rw: NonNullable<UrlRewrite['path']>, matchedPrefix: string | null): string {
  if (rw.kind === 'full') return rw.value;
  return replacePrefix(path, matchedPrefix ?? rw.match, rw.value);
}

function hostOnly(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const c = authority.lastIndexOf(':');
  return c < 0 ? authority : authority.slice(0, c);
}

function portOf(authority: string): number | null {
  const m = /:(\d+)$/.exec(authority);
  return m ? Number(m[1]) : null;
}

/** Gateway API RequestRedirect: what is not set keeps the request's; well-known ports are left out. */
export function redirectLocation(req: L7Request, r: Redirect, matchedPrefix: string | null): string {
  const scheme = r.scheme ?? req.scheme ?? 'http';
  const host = r.hostname ?? hostOnly(req.authority);
  let port: number | null;
  if (r.port !== undefined) port = r.port;
  else if (r.scheme !== undefined) port = null;
  else port = portOf(req.authority);
  const wellKnown = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  const { path, query } = splitTarget(req.path);
  const newPath = r.path ? rewritePath(path, r.path, matchedPrefix) : path;
  return `${scheme}://${host}${port !== null && !wellKnown ? `:${port}` : ''}${newPath}${query}`;
}

export interface RouterOptions {
  services: ServiceStore;
  routes: RouteStore;
}

/** Outbound only: `rc.conn.service` is the Service port the client called; pod-IP destinations pass through. */
export function routerLayer(opts: RouterOptions): Layer {
  let generation = -1;
  let cache = new Map<string, CompiledTable>();
  const tableFor = (name: string): CompiledTable | undefined => {
    if (generation !== opts.routes.generation()) {
      generation = opts.routes.generation();
      cache = new Map();
    }
    let c = cache.get(name);
    if (!c) {
      const t = opts.routes.get(name);
      if (!t) return undefined;
      c = compileTable(t);
      cache.set(name, c);
    }
    return c;
  };

  const select = (req: L7Request, rc: RequestContext): { cr: CompiledRoute; prefix: string | null } | null => {
    const sp = rc.conn.service!;
    const name = sp.consumerRouteTables?.[rc.conn.pod.namespace] ?? sp.routeTable;
    // No table (yet): the Service's own cluster, as for a port without routes.
    const table = name === undefined ? undefined : tableFor(name);
    if (!table) return { cr: defaultRoute(sp.cluster), prefix: null };
    const { path, query } = splitTarget(req.path);
    let params: URLSearchParams | null | undefined;
    for (const cr of table.routes) {
      if (cr.tests.length === 0) return { cr, prefix: null };
      for (let i = 0; i < cr.tests.length; i++) {
        if (params === undefined) params = query ? new URLSearchParams(query.slice(1)) : null;
        if (cr.tests[i]!(req, path, params)) return { cr, prefix: cr.prefixes[i] ?? null };
      }
    }
    return null;
  };

  return (next) => async (req, rc) => {
    if (rc.conn.service === null) return next(req, rc);
    const picked = select(req, rc);
    if (!picked) return localReply(rc, 404, `no route for ${req.method} ${req.path} on ${rc.conn.service.vip}:${rc.conn.service.port}`, 'NR');
    const { cr, prefix } = picked;
    const route = cr.route;
    rc.route = route;
    const action = route.action;
    if (action.kind === 'redirect') {
      const location = redirectLocation(req, action.redirect, prefix);
      const answer: L7Response = { status: action.redirect.status, headers: { location, 'content-length': '0' }, body: null };
      applyMutation(answer.headers, route.responseHeaders);
      return answer;
    }
    if (action.kind === 'respond') return localReply(rc, action.status, action.body ?? `answered by route ${route.name}`);
    const backend = pickBackend(cr, action.backends);
    if (backend === null) return localReply(rc, 500, `route ${route.name} has no backend with weight above 0`, 'NR');
    rc.backend = backend;
    // Gateway API: an invalid backend's share is answered 500 for HTTPRoute, UNAVAILABLE for GRPCRoute.
    if (backend.invalid !== undefined) return localReply(rc, route.source.kind === 'GRPCRoute' ? 503 : 500, `route ${route.name}: backend ${backend.cluster} is invalid: ${backend.invalid}`, 'NC');
    const cluster = opts.services.cluster(backend.cluster);
    if (!cluster) return localReply(rc, 500, `route ${route.name}: cluster ${backend.cluster} is unknown`, 'NC');
    rc.cluster = cluster;
    applyMutation(req.headers, route.requestHeaders);
    applyMutation(req.headers, backend.requestHeaders);
    if (action.rewrite) {
      if (action.rewrite.hostname !== undefined) req.authority = action.rewrite.hostname;
      if (action.rewrite.path) {
        const { path, query } = splitTarget(req.path);
        req.path = rewritePath(path, action.rewrite.path, prefix) + query;
      }
    }
    const answer = await next(req, rc);
    // Local replies (no endpoint, denied) are the mesh's own words: the route's response filters are for
    // the backend's answers, and for ours too, as Envoy applies them.
    applyMutation(answer.headers, route.responseHeaders);
    applyMutation(answer.headers, backend.responseHeaders);
    return answer;
  };
}
