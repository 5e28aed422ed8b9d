// RDS on the agent: RouteConfiguration -> RouteTable (state/routes.ts), refusing what the agent cannot honour.
//
// Reads the shapes controlplane/routes/rds.ts writes (one virtual host "*", one route per match) and the
// standard Envoy forms next to them; a field that would change what happens to a request and that the agent
// does not implement is refused by name, so a NACK says exactly what to remove.
//
// A decoded table is frozen, and the parts that tables repeat (match lists, sources, policies, header
// mutations, a rule's route in every table its parentRefs reach) are one shared instance (canon.ts).

import { compileFullMatch } from '../util/regex';
import type {
  HeaderMatch,
  HeaderMutation,
  PathMatch,
  QueryMatch,
  Redirect,
  Route,
  RouteAction,
  RouteMatch,
  RoutePolicy,
  RouteTable,
  UrlRewrite,
  WeightedBackend,
} from '../state/routes';
import { decodeRoutePolicy } from './decode-route-policy';
import { intern, isSet, list, nodemeshMeta, refuse, XdsResourceError, type Msg } from './decode-util';
import { INVALID_BACKEND_PREFIX } from './resource-types';
import { deepFreeze } from '../util/deep-freeze';
import { Canon, listOrEmpty } from './canon';

/** The parts decoded tables share, across every RouteConfiguration this agent decodes. */
const canon = new Canon();

/** Lets go of the shared parts' lookup table once a large change is applied (`forgetInterned`'s reason). */
export function forgetRouteParts(): void {
  canon.clear();
}

const REDIRECT_STATUS: Record<string, Redirect['status']> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};

/** ReplaceFullPath as the control plane writes it (routes/rds.ts FULL_PATH_PATTERN). */
const FULL_PATH_PATTERNS = new Set(['^/.*$', '/.*', '.*']);

function regex(where: string, pattern: unknown): string {
  const s = String((pattern as Msg | null | undefined)?.regex ?? '');
  try {
    compileFullMatch(s);
  } catch (e) {
    throw new XdsResourceError(`${where}: safe_regex ${(e as Error).message}`);
  }
  return s;
}

/** Gateway API's segment prefix as a regex, for Envoy's plain (character) prefix. */
function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

function decodePath(where: string, m: Msg): PathMatch {
  const spec = String(m.path_specifier ?? '');
  switch (spec) {
    case 'path':
      return { kind: 'exact', value: String(m.path) };
    case 'path_separated_prefix':
      return { kind: 'prefix', value: String(m.path_separated_prefix) };
    case 'prefix': {
      const p = String(m.prefix);
      if (p === '/' || p === '') return { kind: 'prefix', value: '/' };
      // Envoy's prefix is by character ("/foo" matches "/foobar"); the table's prefix is by segment.
      return { kind: 'regex', value: `${escapeRegex(p)}.*` };
    }
    case 'safe_regex':
      return { kind: 'regex', value: regex(where, m.safe_regex) };
    default:
      throw new XdsResourceError(`${where}: path match ${spec || '(none)'} is not supported (prefix, path, path_separated_prefix, safe_regex)`);
  }
}

/** A StringMatcher as exact / regex (prefix, suffix and contains become anchored regexes). */
function stringMatch(where: string, sm: Msg): { kind: 'exact' | 'regex'; value: string } {
  if (sm.ignore_case) throw new XdsResourceError(`${where}: ignore_case string matches are not supported`);
  const kind = String(sm.match_pattern ?? '');
  switch (kind) {
    case 'exact':
      return { kind: 'exact', value: String(sm.exact) };
    case 'safe_regex':
      return { kind: 'regex', value: regex(where, sm.safe_regex) };
    case 'prefix':
      return { kind: 'regex', value: `${escapeRegex(String(sm.prefix))}.*` };
    case 'suffix':
      return { kind: 'regex', value: `.*${escapeRegex(String(sm.suffix))}` };
    case 'contains':
      return { kind: 'regex', value: `.*${escapeRegex(String(sm.contains))}.*` };
    default:
      throw new XdsResourceError(`${where}: string match ${kind || '(none)'} is not supported (exact, prefix, suffix, contains, safe_regex)`);
  }
}

function decodeHeader(where: string, h: Msg): HeaderMatch | { method: string } {
  const name = String(h.name ?? '').toLowerCase();
  const at = `${where} header ${name}`;
  if (!name) throw new XdsResourceError(`${where}: header match without a name`);
  refuse(at, h, { treat_missing_header_as_empty: 'a missing header never matches' });
  const spec = String(h.header_match_specifier ?? '');
  let m: HeaderMatch;
  if (spec === 'present_match') {
    m = { name, kind: 'present', value: '' };
    // present_match false means "absent", which is invert of present.
    if (h.present_match === false) m.invert = true;
  } else if (spec === 'string_match') m = { name, ...stringMatch(at, h.string_match as Msg) };
  else if (spec === 'exact_match') m = { name, kind: 'exact', value: String(h.exact_match) };
  else if (spec === 'safe_regex_match') m = { name, kind: 'regex', value: regex(at, h.safe_regex_match) };
  else if (spec === 'prefix_match' || spec === 'suffix_match' || spec === 'contains_match') {
    m = { name, ...stringMatch(at, { match_pattern: spec.replace('_match', ''), [spec.replace('_match', '')]: h[spec] }) };
  } else throw new XdsResourceError(`${at}: header match ${spec || '(none)'} is not supported (string_match, present_match, exact_match, safe_regex_match)`);
  if (h.invert_match) m.invert = !m.invert;
  if (name === ':method') {
    if (m.kind !== 'exact' || m.invert) throw new XdsResourceError(`${at}: only an exact, non-inverted :method match is supported`);
    return { method: m.value };
  }
  if (name.startsWith(':')) throw new XdsResourceError(`${at}: pseudo-header matches other than :method are not supported`);
  return m;
}

function decodeQuery(where: string, q: Msg): QueryMatch {
  const name = String(q.name ?? '');
  const at = `${where} query parameter ${name}`;
  if (!name) throw new XdsResourceError(`${where}: query parameter match without a name`);
  const spec = String(q.query_parameter_match_specifier ?? '');
  if (spec === 'present_match') {
    if (q.present_match !== true) throw new XdsResourceError(`${at}: present_match false is not supported`);
    return { name, kind: 'present', value: '' };
  }
  if (spec === 'string_match') return { name, ...stringMatch(at, q.string_match as Msg) };
  throw new XdsResourceError(`${at}: match ${spec || '(none)'} is not supported (string_match, present_match)`);
}

function decodeMatch(where: string, m: Msg): RouteMatch {
  refuse(where, m, {
    runtime_fraction: 'the agent has no runtime',
    grpc: 'routes match gRPC requests by path and headers',
    tls_context: 'the agent sees plaintext requests',
    dynamic_metadata: 'the agent has no dynamic metadata',
    filter_state: 'the agent has no filter state',
  });
  const cs = m.case_sensitive as Msg | null | undefined;
  if (cs && cs.value === false) throw new XdsResourceError(`${where}: case_sensitive false is not supported (paths match case-sensitively)`);
  const path = canon.share('path', decodePath(where, m));
  const headers: HeaderMatch[] = [];
  let method: string | undefined;
  for (const h of list(m, 'headers')) {
    const d = decodeHeader(where, h);
    if ('method' in d) {
      if (method !== undefined) throw new XdsResourceError(`${where}: two :method matches`);
      method = d.method;
    } else headers.push(d);
  }
  // Fields in this order, as /config_dump has always shown them; slice() drops push's spare capacity.
  const out: RouteMatch = { path, headers: listOrEmpty(headers.slice()), query: listOrEmpty(list(m, 'query_parameters').map((q) => decodeQuery(where, q))) };
  if (method !== undefined) out.method = method;
  return out;
}

/** Envoy header options back into Gateway API set / add (OVERWRITE_IF_EXISTS_OR_ADD / APPEND_IF_EXISTS_OR_ADD) / remove. */
function decodeHeaders(where: string, m: Msg, prefix: 'request' | 'response'): HeaderMutation | undefined {
  const add = list(m, `${prefix}_headers_to_add`);
  const remove = ((m[`${prefix}_headers_to_remove`] as unknown[] | undefined) ?? []).map((x) => String(x).toLowerCase());
  if (add.length === 0 && remove.length === 0) return undefined;
  const set: [string, string][] = [];
  const append: [string, string][] = [];
  for (const o of add) {
    const h = (o.header as Msg | null | undefined) ?? {};
    const key = String(h.key ?? '').toLowerCase();
    if (!key || key.startsWith(':') || key === 'host') throw new XdsResourceError(`${where}: ${prefix}_headers_to_add may not set "${key}"`);
    if (isSet(h.raw_value)) throw new XdsResourceError(`${where}: ${prefix}_headers_to_add ${key}: raw_value is not supported (use value)`);
    const value = String(h.value ?? '');
    // Envoy: `append` (legacy) wins when present; else append_action, whose default appends.
    const legacy = o.append as Msg | null | undefined;
    const action = legacy ? (legacy.value === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD') : String(o.append_action ?? 'APPEND_IF_EXISTS_OR_ADD');
    if (action === 'OVERWRITE_IF_EXISTS_OR_ADD') set.push([key, value]);
    else if (action === 'APPEND_IF_EXISTS_OR_ADD') append.push([key, value]);
    else throw new XdsResourceError(`${where}: ${prefix}_headers_to_add ${key}: append_action ${action} is not supported`);
  }
  return canon.share('mutation', { set: listOrEmpty(set.slice()), add: listOrEmpty(append.slice()), remove: listOrEmpty(remove) });
}

function decodeBackend(where: string, w: Msg): WeightedBackend {
  const name = String(w.name ?? '');
  const at = `${where} weighted cluster ${name}`;
  if (!name) throw new XdsResourceError(`${where}: weighted cluster without a name (cluster_header is not supported)`);
  refuse(at, w, {
    cluster_header: 'clusters are named in the route',
    metadata_match: 'endpoint subsets are not supported',
    typed_per_filter_config: 'no per-cluster filter config',
    host_rewrite_literal: 'rewrite the host on the route',
  });
  const weight = (w.weight as Msg | null | undefined)?.value;
  const b: WeightedBackend = { cluster: intern(name), weight: weight === undefined || weight === null ? 0 : Number(weight) };
  if (name.startsWith(INVALID_BACKEND_PREFIX)) b.invalid = name.slice(INVALID_BACKEND_PREFIX.length) || 'backend is not usable';
  const rq = decodeHeaders(at, w, 'request');
  if (rq) b.requestHeaders = rq;
  const rs = decodeHeaders(at, w, 'response');
  if (rs) b.responseHeaders = rs;
  return b;
}

function decodeForward(where: string, a: Msg, matches: RouteMatch[]): RouteAction {
  refuse(where, a, {
    metadata_match: 'endpoint subsets are not supported',
    path_rewrite_policy: 'use prefix_rewrite or regex_rewrite',
    auto_host_rewrite: 'use host_rewrite_literal',
    host_rewrite_header: 'use host_rewrite_literal',
    host_rewrite_path_regex: 'use host_rewrite_literal',
    rate_limits: 'rate limiting is not supported',
    cors: 'CORS is not supported',
    upgrade_configs: 'upgrades follow the protocol (WebSocket is always allowed)',
    internal_redirect_policy: 'internal redirects are not supported',
    hedge_policy: 'hedging is not supported',
    max_stream_duration: 'use timeout',
    early_data_policy: 'the agent does not use early data',
  });
  const spec = String(a.cluster_specifier ?? '');
  let backends: WeightedBackend[];
  if (spec === 'cluster') backends = [{ cluster: intern(String(a.cluster)), weight: 1 }];
  else if (spec === 'weighted_clusters') {
    const wc = a.weighted_clusters as Msg;
    refuse(`${where} weighted_clusters`, wc, { runtime_key_prefix: 'the agent has no runtime', header_name: 'weights pick at random' });
    backends = list(wc, 'clusters').map((w) => decodeBackend(where, w));
    if (backends.length === 0) throw new XdsResourceError(`${where}: weighted_clusters without clusters`);
    if (backends.reduce((n, b) => n + b.weight, 0) === 0) throw new XdsResourceError(`${where}: weighted_clusters whose weights sum to 0`);
  } else throw new XdsResourceError(`${where}: route action ${spec || '(no cluster)'} is not supported (cluster, weighted_clusters)`);
  const action: Extract<RouteAction, { kind: 'forward' }> = { kind: 'forward', backends };
  const rewrite: UrlRewrite = {};
  if (isSet(a.prefix_rewrite)) {
    const prefix = matches.length === 1 ? matches[0]!.path : undefined;
    if (!prefix || prefix.kind !== 'prefix') throw new XdsResourceError(`${where}: prefix_rewrite needs the route to match a path prefix`);
    rewrite.path = { kind: 'prefix', match: prefix.value, value: String(a.prefix_rewrite) };
  }
  if (isSet(a.regex_rewrite)) {
    if (rewrite.path) throw new XdsResourceError(`${where}: prefix_rewrite and regex_rewrite together`);
    rewrite.path = regexRewrite(where, a.regex_rewrite as Msg, matches);
  }
  if (String(a.host_rewrite_specifier ?? '') === 'host_rewrite_literal') rewrite.hostname = String(a.host_rewrite_literal);
  if (rewrite.path || rewrite.hostname !== undefined) action.rewrite = rewrite;
  return action;
}

/**
 * The two regex_rewrite forms the control plane writes: `^/.*$` (ReplaceFullPath) and `^<prefix>/*` -> "/"
 * (ReplacePrefixMatch with "/", where the route matches that prefix).
 */
function regexRewrite(where: string, rr: Msg, matches: RouteMatch[]): NonNullable<UrlRewrite['path']> {
  const pattern = String((rr.pattern as Msg | null | undefined)?.regex ?? '');
  const substitution = String(rr.substitution ?? '');
  if (FULL_PATH_PATTERNS.has(pattern)) return { kind: 'full', value: substitution };
  const prefix = matches.length === 1 ? matches[0]!.path : undefined;
  if (prefix?.kind === 'prefix' && pattern === `^${escapeRegex(prefix.value)}/*` && substitution === '/') return { kind: 'prefix', match: prefix.value, value: '/' };
  throw new XdsResourceError(`${where}: regex_rewrite is supported as a full path replacement (^/.*$) or as the route's prefix replaced by "/" (^PREFIX/* -> /), got "${pattern}" -> "${substitution}"`);
}

function decodeRedirect(where: string, r: Msg, matches: RouteMatch[]): Redirect {
  if (r.strip_query) throw new XdsResourceError(`${where}: strip_query is not supported (redirects keep the query)`);
  const status = REDIRECT_STATUS[String(r.response_code ?? 'MOVED_PERMANENTLY')];
  if (!status) throw new XdsResourceError(`${where}: redirect response_code ${String(r.response_code)} is not supported`);
  const d: Redirect = { status };
  const scheme = String(r.scheme_rewrite_specifier ?? '');
  if (scheme === 'https_redirect' && r.https_redirect) d.scheme = 'https';
  else if (scheme === 'scheme_redirect') {
    const s = String(r.scheme_redirect).toLowerCase();
    if (s !== 'http' && s !== 'https') throw new XdsResourceError(`${where}: scheme_redirect ${s} is not supported (http, https)`);
    d.scheme = s;
  }
  if (isSet(r.host_redirect)) d.hostname = String(r.host_redirect);
  if (isSet(r.port_redirect)) d.port = Number(r.port_redirect);
  const path = String(r.path_rewrite_specifier ?? '');
  if (path === 'path_redirect') d.path = { kind: 'full', value: String(r.path_redirect) };
  else if (path === 'prefix_rewrite') {
    const prefix = matches.length === 1 ? matches[0]!.path : undefined;
    if (!prefix || prefix.kind !== 'prefix') throw new XdsResourceError(`${where}: redirect prefix_rewrite needs the route to match a path prefix`);
    d.path = { kind: 'prefix', match: prefix.value, value: String(r.prefix_rewrite) };
  } else if (path === 'regex_rewrite') d.path = regexRewrite(where, r.regex_rewrite as Msg, matches);
  else if (path) throw new XdsResourceError(`${where}: redirect ${path} is not supported (path_redirect, prefix_rewrite, regex_rewrite)`);
  return d;
}

function decodeSource(where: string, metadata: unknown): Route['source'] {
  const m = nodemeshMeta(metadata);
  if (m.kind === undefined) return canon.share('source', { kind: 'default', namespace: '', name: '' });
  if (m.kind !== 'HTTPRoute' && m.kind !== 'GRPCRoute' && m.kind !== 'default') {
    throw new XdsResourceError(`${where}: metadata nodemesh.kind ${JSON.stringify(m.kind)} is not HTTPRoute, GRPCRoute or default`);
  }
  const s: Route['source'] = { kind: m.kind, namespace: String(m.namespace ?? ''), name: String(m.name ?? '') };
  if (typeof m.rule === 'string') s.rule = m.rule;
  return canon.share('source', s);
}

function decodeRoute(where: string, r: Msg, i: number): Route {
  const name = intern(String(r.name ?? '') || `route-${i}`);
  const at = `${where} route ${name}`;
  refuse(at, r, {
    decorator: 'tracing comes later',
    tracing: 'tracing comes later',
    per_request_buffer_limit_bytes: 'the agent streams requests',
  });
  const matches = canon.share('matches', [decodeMatch(at, (r.match as Msg | null | undefined) ?? {})]);
  const source = decodeSource(at, r.metadata);
  const policy: RoutePolicy = {};
  const kind = String(r.action ?? '');
  if (kind !== 'route' && isSet(r.typed_per_filter_config, 'typed_per_filter_config')) {
    throw new XdsResourceError(`${at}: typed_per_filter_config is supported on routes that forward (faults apply to forwarded requests)`);
  }
  let action: RouteAction;
  if (kind === 'route') {
    action = decodeForward(at, r.route as Msg, matches);
    decodeRoutePolicy(at, r, r.route as Msg, policy);
  } else if (kind === 'redirect') action = { kind: 'redirect', redirect: decodeRedirect(at, r.redirect as Msg, matches) };
  else if (kind === 'direct_response') {
    const d = r.direct_response as Msg;
    const status = Number(d.status ?? 0);
    if (!(status >= 200 && status <= 599)) throw new XdsResourceError(`${at}: direct_response status ${status} is out of range 200-599`);
    const body = d.body as Msg | null | undefined;
    if (body && String(body.specifier ?? '') !== 'inline_string') throw new XdsResourceError(`${at}: direct_response body must be inline_string`);
    action = body ? { kind: 'respond', status, body: String(body.inline_string) } : { kind: 'respond', status };
  } else throw new XdsResourceError(`${at}: action ${kind || '(none)'} is not supported (route, redirect, direct_response)`);
  // Fields in this order, as /config_dump has always shown them.
  const route: Route = { name, source, matches, action };
  const rq = decodeHeaders(at, r, 'request');
  if (rq) route.requestHeaders = rq;
  const rs = decodeHeaders(at, r, 'response');
  if (rs) route.responseHeaders = rs;
  if (Object.keys(policy).length > 0) route.policy = canon.share('policy', policy);
  // The default route (a Service port without routes: one cluster, nothing else) is its table's own, which no
  // other table repeats: a key per table would cost more than it shares. Other routes come from HTTPRoute and
  // GRPCRoute rules, and a rule's route recurs in the table of every port its parentRefs reach.
  const plain = action.kind === 'forward' && action.backends.length === 1 && action.rewrite === undefined && !rq && !rs && route.policy === undefined;
  return plain && String((r.route as Msg).cluster_specifier ?? '') === 'cluster' ? route : canon.share('route', route);
}

/** A RouteConfiguration with one virtual host for every authority (`*`): the agent routes by VIP:port. */
export function decodeRouteConfiguration(rc: Msg): RouteTable {
  const name = intern(String(rc.name ?? ''));
  const where = `RouteConfiguration ${name}`;
  refuse(where, rc, {
    vhds: 'virtual hosts come inline',
    internal_only_headers: 'not supported',
    request_headers_to_add: 'set headers on the routes',
    request_headers_to_remove: 'set headers on the routes',
    response_headers_to_add: 'set headers on the routes',
    response_headers_to_remove: 'set headers on the routes',
    cluster_specifier_plugins: 'not supported',
    typed_per_filter_config: 'no per-route filter config',
  });
  const hosts = list(rc, 'virtual_hosts');
  const domains = hosts.map((h) => (h.domains as string[] | undefined) ?? []);
  if (hosts.length !== 1 || domains[0]!.length !== 1 || domains[0]![0] !== '*') {
    throw new XdsResourceError(`${where}: needs exactly one virtual host with domains ["*"] (the agent routes by the Service's cluster IP and port, never by Host)`);
  }
  const vh = hosts[0]!;
  const at = `${where} virtual host ${String(vh.name)}`;
  refuse(at, vh, {
    require_tls: 'the mesh carries requests over mTLS itself',
    virtual_clusters: 'not supported',
    rate_limits: 'rate limiting is not supported',
    request_headers_to_add: 'set headers on the routes',
    request_headers_to_remove: 'set headers on the routes',
    response_headers_to_add: 'set headers on the routes',
    response_headers_to_remove: 'set headers on the routes',
    cors: 'CORS is not supported',
    typed_per_filter_config: 'no per-host filter config',
    retry_policy: 'set retry_policy on the routes',
    hedge_policy: 'hedging is not supported',
    matcher: 'matcher trees are not supported (use routes)',
  });
  // Frozen as a whole: readers never write into a table, and its shared parts must never change under another.
  return deepFreeze({ name, routes: list(vh, 'routes').map((r, i) => decodeRoute(at, r, i)) });
}
