// Validates Gateway API HTTPRoute and GRPCRoute (v1) into RouteObjects, every problem with its field path.
//
// What Gateway API's CRD schema and CEL rules refuse is refused here too (so a file gets the errors the API
// server would give), plus what nodemesh does not do yet, with a message saying so. References to other
// objects (parent and backend Services) are resolved later; a missing one is a status, not an invalid object.

import { regexProblem } from '../../util/regex';
import type { HeaderMatch, HeaderMutation, PathMatch, QueryMatch, Redirect, RouteMatch, UrlRewrite } from '../../state/routes';
import { Checker, DNS_SUBDOMAIN, LABEL, readMeta, SUBDOMAIN, type FieldPath, type Json, type NameRule } from '../checker';
import { GATEWAY_GROUP, type BackendRef, type MatchRank, type MirrorRef, type ParentRef, type RouteKind, type RouteObject, type RouteRule } from './route-objects';
import { faultRefOf, mirrorOf, retryOf, timeoutsOf } from './rule-policy-validate';

const HEADER_NAME: NameRule = { re: /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, what: 'an HTTP header name (RFC 7230 token characters)' };
const HOSTNAME: NameRule = {
  re: /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  what: 'a hostname (lowercase DNS name, optionally starting with "*.")',
};
const PRECISE_HOSTNAME: NameRule = { re: DNS_SUBDOMAIN, what: 'a hostname (lowercase DNS name, no wildcard)' };
const SECTION_NAME: NameRule = { re: DNS_SUBDOMAIN, what: 'a section name (lowercase DNS subdomain)' };
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;
const GRPC_SERVICE = /^\.?[a-zA-Z_][a-zA-Z_0-9]*(\.[a-zA-Z_][a-zA-Z_0-9]*)*$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
const REDIRECT_CODES = [301, 302, 303, 307, 308] as const;
const MAX_WEIGHT = 1_000_000;

/** Filters Gateway API defines that nodemesh does not implement, with what to do instead. */
const UNSUPPORTED_FILTERS: Record<string, string> = {
  CORS: 'CORS is not supported (the mesh proxies requests between workloads; browsers talk to gateways)',
  ExternalAuth: 'ExternalAuth is not supported (use an AuthorizationPolicy)',
};

/** Filters Gateway API lets a list hold more than once (its CEL rules forbid repeating the others). */
const REPEATABLE_FILTERS = new Set(['RequestMirror', 'ExtensionRef']);

/** Reads a list of at most `max` entries, each through `each`. */
function listOf<T>(c: Checker, v: unknown, path: FieldPath, max: number, each: (raw: unknown, p: FieldPath, i: number) => T | undefined): T[] {
  const raw = c.array(v, path, false);
  if (raw.length > max) c.fail(path, `must have at most ${max} entries, got ${raw.length}`);
  const out: T[] = [];
  raw.forEach((r, i) => {
    const x = each(r, [...path, i], i);
    if (x !== undefined) out.push(x);
  });
  return out;
}

function regexValue(c: Checker, s: string, path: FieldPath): void {
  const problem = regexProblem(s);
  if (problem) c.fail(path, `"${s}": ${problem}`);
}

function headerValue(c: Checker, v: unknown, path: FieldPath, max: number): string | undefined {
  const s = c.string(v, path, true);
  if (s === undefined) return undefined;
  if (s.length === 0) c.fail(path, 'must not be empty');
  else if (s.length > max) c.fail(path, `must be at most ${max} characters`);
  else if (/[\r\n\0]/.test(s)) c.fail(path, 'must not contain CR, LF or NUL');
  else return s;
  return undefined;
}

/** `metadata.creationTimestamp` and `metadata.generation`, when the API server set them. */
function apiMeta(c: Checker, doc: Json): { created?: number; generation?: number } {
  const m = c.map(doc.metadata, ['metadata'], false) ?? {};
  const out: { created?: number; generation?: number } = {};
  if (m.creationTimestamp !== undefined && m.creationTimestamp !== null) {
    const t = m.creationTimestamp instanceof Date ? m.creationTimestamp.getTime() : Date.parse(String(m.creationTimestamp));
    if (Number.isNaN(t)) c.fail(['metadata', 'creationTimestamp'], `"${String(m.creationTimestamp)}" is not an RFC 3339 time`);
    else out.created = t;
  }
  const g = c.int(m.generation, ['metadata', 'generation'], false, 0, Number.MAX_SAFE_INTEGER);
  if (g !== undefined) out.generation = g;
  return out;
}

function parentRef(c: Checker, raw: unknown, path: FieldPath, namespace: string): ParentRef | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['group', 'kind', 'namespace', 'name', 'port', 'sectionName']);
  const group = c.string(m.group, [...path, 'group'], false) ?? GATEWAY_GROUP;
  const kind = c.string(m.kind, [...path, 'kind'], false) ?? 'Gateway';
  const isService = group === '' && kind === 'Service';
  const isGateway = group === GATEWAY_GROUP && kind === 'Gateway';
  if (!isService && !isGateway) {
    c.fail(
      [...path, 'kind'],
      `a parentRef must name a Service (group: "", kind: Service) for mesh routing, or a Gateway (served by a gateway controller); got group "${group}", kind "${kind}"`,
    );
  }
  const ref: ParentRef = {
    group,
    kind,
    namespace: c.string(m.namespace, [...path, 'namespace'], false, LABEL) ?? namespace,
    name: c.string(m.name, [...path, 'name'], true, isService ? LABEL : SUBDOMAIN) ?? '',
  };
  const port = c.port(m.port, [...path, 'port'], false);
  if (port !== undefined) ref.port = port;
  const section = c.string(m.sectionName, [...path, 'sectionName'], false, SECTION_NAME);
  if (section !== undefined) ref.sectionName = section;
  return ref;
}

function headerMutation(c: Checker, raw: unknown, path: FieldPath): HeaderMutation {
  const out: HeaderMutation = { set: [], add: [], remove: [] };
  const m = c.map(raw, path, true);
  if (!m) return out;
  c.unknownFields(m, path, ['set', 'add', 'remove']);
  const name = (v: unknown, p: FieldPath): string | undefined => {
    const n = c.string(v, p, true, HEADER_NAME);
    if (n === undefined) return undefined;
    if (n.toLowerCase() === 'host') {
      c.fail(p, 'the Host header cannot be modified here; use a URLRewrite filter with hostname');
      return undefined;
    }
    return n.toLowerCase();
  };
  for (const op of ['set', 'add'] as const) {
    const seen = new Set<string>();
    for (const [n, v] of listOf(c, m[op], [...path, op], 16, (r, p) => {
      const h = c.map(r, p, true);
      if (!h) return undefined;
      c.unknownFields(h, p, ['name', 'value']);
      const n = name(h.name, [...p, 'name']);
      const v = headerValue(c, h.value, [...p, 'value'], 4096);
      return n !== undefined && v !== undefined ? ([n, v] as [string, string]) : undefined;
    })) {
      // Gateway API: of entries with equivalent names, the first one counts.
      if (seen.has(n)) continue;
      seen.add(n);
      out[op].push([n, v]);
    }
  }
  out.remove = [...new Set(listOf(c, m.remove, [...path, 'remove'], 16, (r, p) => name(r, p)))];
  return out;
}

type PathModifier = { kind: 'full'; value: string } | { kind: 'prefixReplace'; value: string };

function pathModifier(c: Checker, raw: unknown, path: FieldPath): PathModifier | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['type', 'replaceFullPath', 'replacePrefixMatch']);
  const type = c.oneOf(m.type, [...path, 'type'], ['ReplaceFullPath', 'ReplacePrefixMatch'] as const);
  if (type === undefined) return undefined;
  const field = type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  if (m[other] !== undefined) c.fail([...path, other], `must not be set when type is ${type} (set ${field})`);
  const value = c.string(m[field], [...path, field], true);
  if (value === undefined) return undefined;
  if (value.length > 1024) c.fail([...path, field], 'must be at most 1024 characters');
  else if (type === 'ReplaceFullPath' && !value.startsWith('/')) c.fail([...path, field], `"${value}" must start with "/"`);
  else if (value !== '' && !value.startsWith('/')) c.fail([...path, field], `"${value}" must be empty or start with "/"`);
  else if (/[\s?#]/.test(value)) c.fail([...path, field], `"${value}" must not contain whitespace, "?" or "#"`);
  else if (type === 'ReplaceFullPath') return { kind: 'full', value };
  // Gateway API: a trailing "/" of the replacement changes nothing, and "" acts as "/".
  else return { kind: 'prefixReplace', value: value === '' ? '/' : value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value };
  return undefined;
}

/** ReplacePrefixMatch needs the rule's one PathPrefix match (Gateway API CEL rule); its value is what is replaced. */
function withPrefix(c: Checker, mod: PathModifier, matches: RouteMatch[], path: FieldPath): UrlRewrite['path'] | undefined {
  if (mod.kind === 'full') return mod;
  const only = matches.length === 1 ? matches[0]!.path : undefined;
  if (!only || only.kind !== 'prefix') {
    c.fail(path, 'ReplacePrefixMatch needs exactly one match in the rule, with a PathPrefix path');
    return undefined;
  }
  return { kind: 'prefix', match: only.value, value: mod.value };
}

function redirectFilter(c: Checker, raw: unknown, path: FieldPath, matches: RouteMatch[]): Redirect | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['scheme', 'hostname', 'path', 'port', 'statusCode']);
  const before = c.issues.length;
  const status = m.statusCode === undefined ? 302 : c.int(m.statusCode, [...path, 'statusCode'], true, 100, 599);
  if (status !== undefined && !(REDIRECT_CODES as readonly number[]).includes(status)) {
    c.fail([...path, 'statusCode'], `${status} is not a redirect status Gateway API allows (${REDIRECT_CODES.join(', ')})`);
  }
  const r: Redirect = { status: (status ?? 302) as Redirect['status'] };
  const scheme = c.oneOf(m.scheme, [...path, 'scheme'], ['http', 'https'] as const, 'http');
  if (m.scheme !== undefined && scheme !== undefined) r.scheme = scheme;
  const hostname = c.string(m.hostname, [...path, 'hostname'], false, PRECISE_HOSTNAME);
  if (hostname !== undefined) r.hostname = hostname;
  const port = c.port(m.port, [...path, 'port'], false);
  if (port !== undefined) r.port = port;
  if (m.path !== undefined) {
    const mod = pathModifier(c, m.path, [...path, 'path']);
    const p = mod && withPrefix(c, mod, matches, [...path, 'path']);
    if (p) r.path = p;
  }
  return c.issues.length === before ? r : undefined;
}

function rewriteFilter(c: Checker, raw: unknown, path: FieldPath, matches: RouteMatch[]): UrlRewrite | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['hostname', 'path']);
  const r: UrlRewrite = {};
  const hostname = c.string(m.hostname, [...path, 'hostname'], false, PRECISE_HOSTNAME);
  if (hostname !== undefined) r.hostname = hostname;
  if (m.path !== undefined) {
    const mod = pathModifier(c, m.path, [...path, 'path']);
    const p = mod && withPrefix(c, mod, matches, [...path, 'path']);
    if (p) r.path = p;
  }
  if (r.hostname === undefined && m.path === undefined) c.fail(path, 'must set hostname and/or path');
  return r;
}

interface Filters {
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  redirect?: Redirect;
  rewrite?: UrlRewrite;
  mirrors?: MirrorRef[];
  fault?: RouteRule['fault'];
}

const FILTER_FIELDS: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  RequestMirror: 'requestMirror',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
  ExtensionRef: 'extensionRef',
};

/**
 * `filters` of a rule (`level` rule) or of a backendRef (`level` backend). Each type at most once; RequestRedirect
 * and URLRewrite never together (Gateway API CEL rules).
 */
function filters(
  c: Checker,
  v: unknown,
  path: FieldPath,
  kind: RouteKind,
  level: 'rule' | 'backend',
  matches: RouteMatch[],
  namespace: string,
): Filters {
  const out: Filters = {};
  const types = kind === 'HTTPRoute' ? Object.keys(FILTER_FIELDS) : ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'];
  const seen = new Set<string>();
  listOf(c, v, path, 16, (raw, p) => {
    const m = c.map(raw, p, true);
    if (!m) return undefined;
    const type = c.oneOf(m.type, [...p, 'type'], types);
    if (type === undefined) return undefined;
    const field = FILTER_FIELDS[type]!;
    c.unknownFields(m, p, ['type', field]);
    if (seen.has(type) && !REPEATABLE_FILTERS.has(type)) c.fail([...p, 'type'], `${type} may appear only once in a filter list`);
    seen.add(type);
    if (UNSUPPORTED_FILTERS[type]) {
      c.fail([...p, 'type'], UNSUPPORTED_FILTERS[type]!);
      return undefined;
    }
    // Envoy mirrors and injects faults per route, not per weighted cluster.
    if (level === 'backend' && (type === 'RequestRedirect' || type === 'URLRewrite' || REPEATABLE_FILTERS.has(type))) {
      c.fail([...p, 'type'], `${type} is not supported on a backendRef (set it on the rule)`);
      return undefined;
    }
    const fp = [...p, field];
    if (m[field] === undefined || m[field] === null) {
      c.fail(fp, `is required when type is ${type}`);
      return undefined;
    }
    if (type === 'RequestHeaderModifier') out.requestHeaders = headerMutation(c, m[field], fp);
    else if (type === 'ResponseHeaderModifier') out.responseHeaders = headerMutation(c, m[field], fp);
    else if (type === 'RequestRedirect') out.redirect = redirectFilter(c, m[field], fp, matches);
    else if (type === 'URLRewrite') out.rewrite = rewriteFilter(c, m[field], fp, matches);
    else if (type === 'RequestMirror') {
      const mirror = mirrorOf(c, m[field], fp, namespace);
      if (mirror) (out.mirrors ??= []).push(mirror);
    } else if (type === 'ExtensionRef') {
      if (out.fault) c.fail([...p, 'type'], 'a rule takes at most one FaultInjection (ExtensionRef) filter');
      const fault = faultRefOf(c, m[field], fp, namespace);
      if (fault) out.fault = fault;
    }
    return undefined;
  });
  if (seen.has('RequestRedirect') && seen.has('URLRewrite')) c.fail(path, 'RequestRedirect and URLRewrite cannot be used in one rule');
  return out;
}

function backendRef(c: Checker, raw: unknown, path: FieldPath, namespace: string, kind: RouteKind): BackendRef | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['group', 'kind', 'namespace', 'name', 'port', 'weight', 'filters']);
  const group = c.string(m.group, [...path, 'group'], false) ?? '';
  const refKind = c.string(m.kind, [...path, 'kind'], false) ?? 'Service';
  const isService = group === '' && refKind === 'Service';
  const ref: BackendRef = {
    group,
    kind: refKind,
    namespace: c.string(m.namespace, [...path, 'namespace'], false, LABEL) ?? namespace,
    name: c.string(m.name, [...path, 'name'], true, isService ? LABEL : SUBDOMAIN) ?? '',
    weight: c.int(m.weight, [...path, 'weight'], false, 0, MAX_WEIGHT) ?? 1,
  };
  const port = c.port(m.port, [...path, 'port'], isService);
  if (port !== undefined) ref.port = port;
  const f = filters(c, m.filters, [...path, 'filters'], kind, 'backend', [], namespace);
  if (f.requestHeaders) ref.requestHeaders = f.requestHeaders;
  if (f.responseHeaders) ref.responseHeaders = f.responseHeaders;
  return ref;
}

function headerMatches(c: Checker, v: unknown, path: FieldPath): HeaderMatch[] {
  const seen = new Set<string>();
  const out: HeaderMatch[] = [];
  for (const h of listOf(c, v, path, 16, (raw, p) => {
    const m = c.map(raw, p, true);
    if (!m) return undefined;
    c.unknownFields(m, p, ['type', 'name', 'value']);
    const type = c.oneOf(m.type, [...p, 'type'], ['Exact', 'RegularExpression'] as const, 'Exact');
    const name = c.string(m.name, [...p, 'name'], true, HEADER_NAME);
    const value = headerValue(c, m.value, [...p, 'value'], 4096);
    if (type === 'RegularExpression' && value !== undefined) regexValue(c, value, [...p, 'value']);
    if (type === undefined || name === undefined || value === undefined) return undefined;
    return { name: name.toLowerCase(), kind: type === 'Exact' ? 'exact' : 'regex', value } satisfies HeaderMatch;
  })) {
    // Gateway API: of entries with equivalent names, only the first is considered.
    if (seen.has(h.name)) continue;
    seen.add(h.name);
    out.push(h);
  }
  return out;
}

function queryMatches(c: Checker, v: unknown, path: FieldPath): QueryMatch[] {
  const seen = new Set<string>();
  const out: QueryMatch[] = [];
  for (const q of listOf(c, v, path, 16, (raw, p) => {
    const m = c.map(raw, p, true);
    if (!m) return undefined;
    c.unknownFields(m, p, ['type', 'name', 'value']);
    const type = c.oneOf(m.type, [...p, 'type'], ['Exact', 'RegularExpression'] as const, 'Exact');
    const name = c.string(m.name, [...p, 'name'], true, HEADER_NAME);
    const value = headerValue(c, m.value, [...p, 'value'], 1024);
    if (type === 'RegularExpression' && value !== undefined) regexValue(c, value, [...p, 'value']);
    if (type === undefined || name === undefined || value === undefined) return undefined;
    return { name, kind: type === 'Exact' ? 'exact' : 'regex', value } satisfies QueryMatch;
  })) {
    if (seen.has(q.name)) continue;
    seen.add(q.name);
    out.push(q);
  }
  return out;
}

/** Gateway API's rules for Exact and PathPrefix values (its CEL validations), one message per problem. */
function pathProblem(v: string): string | undefined {
  if (!v.startsWith('/')) return 'must be an absolute path starting with "/"';
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) if (v.includes(bad)) return `must not contain "${bad}"`;
  if (v.endsWith('/..') || v.endsWith('/.')) return 'must not end with "/." or "/.."';
  if (!PATH_CHARS.test(v)) return 'has characters a path may not hold (allowed: letters, digits, -/._~!$&\'()*+,;=:@ and %XX)';
  return undefined;
}

function httpMatch(c: Checker, raw: unknown, path: FieldPath): { match: RouteMatch; rank: MatchRank } | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['path', 'headers', 'queryParams', 'method']);
  let pm: PathMatch = { kind: 'prefix', value: '/' };
  let type: 'Exact' | 'PathPrefix' | 'RegularExpression' = 'PathPrefix';
  if (m.path !== undefined) {
    const pp = [...path, 'path'];
    const p = c.map(m.path, pp, true) ?? {};
    c.unknownFields(p, pp, ['type', 'value']);
    type = c.oneOf(p.type, [...pp, 'type'], ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix') ?? 'PathPrefix';
    const value = c.string(p.value, [...pp, 'value'], false) ?? '/';
    if (value.length > 1024) c.fail([...pp, 'value'], 'must be at most 1024 characters');
    else if (type === 'RegularExpression') regexValue(c, value, [...pp, 'value']);
    else {
      const problem = pathProblem(value);
      if (problem) c.fail([...pp, 'value'], `"${value}" ${problem}`);
    }
    // PathPrefix ignores a trailing "/" (Gateway API: "/abc/" matches "/abc", "/abc/" and "/abc/def").
    const v = type === 'PathPrefix' && value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
    pm = { kind: type === 'Exact' ? 'exact' : type === 'PathPrefix' ? 'prefix' : 'regex', value: v };
  }
  const match: RouteMatch = { path: pm, headers: headerMatches(c, m.headers, [...path, 'headers']), query: queryMatches(c, m.queryParams, [...path, 'queryParams']) };
  const method = c.oneOf(m.method, [...path, 'method'], METHODS, '' as (typeof METHODS)[number]);
  if (method) match.method = method;
  return {
    match,
    rank: { kind: 'http', path: type, pathLength: pm.value.length, method: match.method !== undefined, headers: match.headers.length, query: match.query.length },
  };
}

/** A GRPCRoute method match becomes a match on the request path `/package.Service/Method`. */
function grpcMatch(c: Checker, raw: unknown, path: FieldPath): { match: RouteMatch; rank: MatchRank } | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['method', 'headers']);
  const match: RouteMatch = { path: { kind: 'prefix', value: '/' }, headers: headerMatches(c, m.headers, [...path, 'headers']), query: [] };
  let service = '';
  let method = '';
  if (m.method !== undefined) {
    const mp = [...path, 'method'];
    const mm = c.map(m.method, mp, true) ?? {};
    c.unknownFields(mm, mp, ['type', 'service', 'method']);
    const type = c.oneOf(mm.type, [...mp, 'type'], ['Exact', 'RegularExpression'] as const, 'Exact');
    service = c.string(mm.service, [...mp, 'service'], false) ?? '';
    method = c.string(mm.method, [...mp, 'method'], false) ?? '';
    if (!service && !method) c.fail(mp, 'must set service and/or method');
    for (const [field, value, re] of [
      ['service', service, GRPC_SERVICE],
      ['method', method, GRPC_METHOD],
    ] as const) {
      if (!value) continue;
      if (value.length > 1024) c.fail([...mp, field], 'must be at most 1024 characters');
      else if (type === 'RegularExpression') regexValue(c, value, [...mp, field]);
      else if (!re.test(value)) c.fail([...mp, field], `"${value}" is not a gRPC ${field} name`);
    }
    if (type === 'Exact') {
      if (service && method) match.path = { kind: 'exact', value: `/${service}/${method}` };
      else if (service) match.path = { kind: 'prefix', value: `/${service}` };
      else if (method) match.path = { kind: 'regex', value: `/[^/]+/${method}` };
    } else if (type === 'RegularExpression' && (service || method)) {
      match.path = { kind: 'regex', value: `/(?:${service || '[^/]+'})/(?:${method || '[^/]+'})` };
    }
  }
  return { match, rank: { kind: 'grpc', service: service.length, method: method.length, headers: match.headers.length } };
}

function rule(c: Checker, raw: unknown, path: FieldPath, index: number, kind: RouteKind, namespace: string): RouteRule | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  const http = kind === 'HTTPRoute';
  c.unknownFields(m, path, http ? ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence'] : ['name', 'matches', 'filters', 'backendRefs', 'sessionPersistence']);
  if (m.sessionPersistence !== undefined) {
    c.fail([...path, 'sessionPersistence'], 'sessionPersistence is not supported (use a DestinationRule consistentHash with httpCookie)');
  }
  const r: RouteRule = { index, matches: [], ranks: [], backends: [] };
  const name = c.string(m.name, [...path, 'name'], false, SECTION_NAME);
  if (name !== undefined) r.name = name;
  const parsed = listOf(c, m.matches, [...path, 'matches'], 64, (x, p) => (http ? httpMatch(c, x, p) : grpcMatch(c, x, p)));
  if (parsed.length === 0) {
    // No matches: every request (Gateway API's default, PathPrefix "/").
    parsed.push({
      match: { path: { kind: 'prefix', value: '/' }, headers: [], query: [] },
      rank: http ? { kind: 'http', path: 'PathPrefix', pathLength: 1, method: false, headers: 0, query: 0 } : { kind: 'grpc', service: 0, method: 0, headers: 0 },
    });
  }
  r.matches = parsed.map((x) => x.match);
  r.ranks = parsed.map((x) => x.rank);
  const f = filters(c, m.filters, [...path, 'filters'], kind, 'rule', r.matches, namespace);
  Object.assign(r, f);
  r.backends = listOf(c, m.backendRefs, [...path, 'backendRefs'], 16, (x, p) => backendRef(c, x, p, namespace, kind));
  if (r.redirect && r.backends.length > 0) c.fail([...path, 'backendRefs'], 'a rule with a RequestRedirect filter answers itself: it must not have backendRefs');
  if (m.timeouts !== undefined) r.timeouts = timeoutsOf(c, m.timeouts, [...path, 'timeouts']);
  if (m.retry !== undefined) r.retry = retryOf(c, m.retry, [...path, 'retry']);
  return r;
}

/** One HTTPRoute or GRPCRoute document (`kind` and `apiVersion` already checked by the caller). */
export function validateRoute(c: Checker, doc: Json, kind: RouteKind, apiVersion: string): RouteObject {
  const meta = readMeta(c, doc, SUBDOMAIN);
  const route: RouteObject = { kind, meta, apiVersion, ...apiMeta(c, doc), parentRefs: [], hostnames: [], rules: [] };
  const spec = c.map(doc.spec, ['spec'], true) ?? {};
  c.unknownFields(spec, ['spec'], ['parentRefs', 'hostnames', 'rules']);
  route.parentRefs = listOf(c, spec.parentRefs, ['spec', 'parentRefs'], 32, (x, p) => parentRef(c, x, p, meta.namespace));
  const keys = new Set<string>();
  route.parentRefs.forEach((p, i) => {
    const k = JSON.stringify([p.group, p.kind, p.namespace, p.name, p.port, p.sectionName]);
    if (keys.has(k)) c.fail(['spec', 'parentRefs', i], 'is listed twice (give each reference to one parent a different port or sectionName)');
    keys.add(k);
  });
  route.hostnames = listOf(c, spec.hostnames, ['spec', 'hostnames'], 16, (x, p) => c.string(x, p, true, HOSTNAME));
  if (spec.rules === undefined || spec.rules === null) {
    // Gateway API's default: one rule matching every request (with no backends: 500 for HTTP, UNAVAILABLE for gRPC).
    route.rules = [rule(c, {}, ['spec', 'rules', 0], 0, kind, meta.namespace)!];
  } else {
    route.rules = listOf(c, spec.rules, ['spec', 'rules'], 16, (x, p, i) => rule(c, x, p, i, kind, meta.namespace));
    if (Array.isArray(spec.rules) && spec.rules.length === 0) c.fail(['spec', 'rules'], 'must list at least one rule');
  }
  const names = new Set<string>();
  route.rules.forEach((r) => {
    if (r.name === undefined) return;
    if (names.has(r.name)) c.fail(['spec', 'rules', r.index, 'name'], `rule name "${r.name}" is used twice in this route`);
    names.add(r.name);
  });
  const matches = route.rules.reduce((n, r) => n + r.matches.length, 0);
  if (matches > 128) c.fail(['spec', 'rules'], `a route may have at most 128 matches across its rules, got ${matches}`);
  return route;
}
