// A route table (state/routes.ts shapes) as an Envoy RouteConfiguration: what agents and proxyless clients read.
//
// The agent decodes exactly this back into the same table (xds/decode-routes.ts); the round trip is a unit test.
// Shapes (all standard Envoy v3; see ARCHITECTURE.md "L7 configuration"):
// - one virtual host, domains ["*"]: agents route by the Service's cluster IP and port, never by Host;
// - one Envoy route per Gateway API match, in precedence order; Route.metadata.filter_metadata.nodemesh
//   = { kind, namespace, name, rule? } names the HTTPRoute/GRPCRoute rule it came from;
// - PathPrefix -> path_separated_prefix (prefix "/" for "/"), Exact -> path, RegularExpression -> safe_regex;
//   method -> header ":method" exact; header and query matches -> string_match exact / safe_regex;
// - forward -> `cluster` (one plain backend) or weighted_clusters (weights as written, 0 included; backend
//   header filters on each ClusterWeight); an unusable backendRef is a cluster named `invalid|<why>` with
//   cluster_not_found_response_code INTERNAL_SERVER_ERROR (GRPCRoute: SERVICE_UNAVAILABLE);
// - URLRewrite -> prefix_rewrite (ReplacePrefixMatch; to "/": regex_rewrite ^<prefix>/* -> "/"),
//   regex_rewrite ^/.*$ (ReplaceFullPath), host_rewrite_literal;
// - RequestRedirect -> redirect (scheme_redirect, host_redirect, port_redirect, path_redirect / prefix_rewrite /
//   regex_rewrite as above, response_code); a rule that answers itself -> direct_response;
// - header modifiers -> *_headers_to_add (append_action OVERWRITE_IF_EXISTS_OR_ADD for set,
//   APPEND_IF_EXISTS_OR_ADD for add) and *_headers_to_remove;
// - timeouts.request -> route.timeout; retries -> retry_policy { retry_on, num_retries, retriable_status_codes,
//   retry_back_off, per_try_timeout (timeouts.backendRequest) }; RequestMirror -> request_mirror_policies
//   { cluster, runtime_fraction }; a FaultInjection -> typed_per_filter_config["envoy.filters.http.fault"]
//   (HTTPFault: delay.fixed_delay, abort.http_status or grpc_status, each with its percentage); the
//   destination's DestinationRule consistentHash -> hash_policy (header, cookie, connection_properties,
//   query_parameter).
// No catch-all route is added: a request no route matches gets Envoy's own answer, 404 (route not found).

import { anyOf, toStruct, type JsonValue } from '../../xds/protos';
import { HTTP_FAULT_FILTER, HTTP_FAULT_TYPE, METADATA_NAMESPACE } from '../../xds/resource-types';
import type { HeaderMutation, Redirect, Route, RouteAction, RouteMatch, RoutePolicy, RouteTable, StringMatcher, UrlRewrite, WeightedBackend } from '../../state/routes';

type Msg = Record<string, unknown>;

export const REDIRECT_CODES: Record<Redirect['status'], string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** ReplaceFullPath as a regex_rewrite: the whole path, whatever it is. */
export const FULL_PATH_PATTERN = '^/.*$';

/** Characters with a meaning in RE2 (and JavaScript) patterns. */
export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

function duration(ms: number): Msg {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

function stringMatch(kind: StringMatcher['kind'] | 'exact' | 'regex', value: string): Msg {
  return kind === 'regex' ? { safe_regex: { regex: value } } : kind === 'prefix' ? { prefix: value } : { exact: value };
}

function encodeMatch(m: RouteMatch, proxyless: boolean): Msg {
  const out: Msg = {};
  const p = m.path ?? { kind: 'prefix', value: '/' };
  if (p.kind === 'exact') out.path = p.value;
  else if (p.kind === 'regex') out.safe_regex = { regex: p.value };
  else if (p.value === '/') out.prefix = '/';
  // gRPC clients know only prefix, path and safe_regex: a segment prefix is the prefix itself or below it.
  else if (proxyless) out.safe_regex = { regex: `${escapeRegex(p.value)}(/.*)?` };
  else out.path_separated_prefix = p.value;
  const headers: Msg[] = [];
  if (m.method) headers.push({ name: ':method', string_match: { exact: m.method } });
  for (const h of m.headers) {
    const hm: Msg = h.kind === 'present' ? { name: h.name, present_match: true } : { name: h.name, string_match: stringMatch(h.kind, h.value) };
    if (h.invert) hm.invert_match = true;
    headers.push(hm);
  }
  if (headers.length > 0) out.headers = headers;
  if (m.query.length > 0) {
    out.query_parameters = m.query.map((q) => (q.kind === 'present' ? { name: q.name, present_match: true } : { name: q.name, string_match: stringMatch(q.kind, q.value) }));
  }
  return out;
}

/** Gateway API set / add / remove as Envoy header options (onto `target` with the given field prefix). */
function encodeHeaders(target: Msg, prefix: 'request' | 'response', h: HeaderMutation | undefined): void {
  if (!h) return;
  const add = [
    ...h.set.map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...h.add.map(([key, value]) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
  if (add.length > 0) target[`${prefix}_headers_to_add`] = add;
  if (h.remove.length > 0) target[`${prefix}_headers_to_remove`] = h.remove;
}

function clusterWeight(b: WeightedBackend): Msg {
  const w: Msg = { name: b.cluster, weight: { value: b.weight } };
  encodeHeaders(w, 'request', b.requestHeaders);
  encodeHeaders(w, 'response', b.responseHeaders);
  return w;
}

function encodeForward(a: Extract<RouteAction, { kind: 'forward' }>, r: Route): Msg {
  const out: Msg = {};
  const only = a.backends.length === 1 ? a.backends[0]! : undefined;
  if (only && !only.invalid && !only.requestHeaders && !only.responseHeaders && only.weight === 1) out.cluster = only.cluster;
  else out.weighted_clusters = { clusters: a.backends.map(clusterWeight) };
  if (a.backends.some((b) => b.invalid)) {
    out.cluster_not_found_response_code = r.source.kind === 'GRPCRoute' ? 'SERVICE_UNAVAILABLE' : 'INTERNAL_SERVER_ERROR';
  }
  if (a.rewrite?.path) Object.assign(out, pathRewrite(a.rewrite.path));
  if (a.rewrite?.hostname) out.host_rewrite_literal = a.rewrite.hostname;
  const p = r.policy;
  if (p?.timeoutMs !== undefined) out.timeout = duration(p.timeoutMs);
  if (p?.retry || p?.perTryTimeoutMs !== undefined) out.retry_policy = retryPolicy(p);
  if (p?.mirrors) out.request_mirror_policies = p.mirrors.map((m) => ({ cluster: m.cluster, runtime_fraction: { default_value: fractionalPercent(m.fraction) } }));
  if (p?.hash) out.hash_policy = p.hash.map(hashPolicy);
  return out;
}

/** A share 0-1 as Envoy's FractionalPercent: per hundred when exact, else per million. */
export function fractionalPercent(share: number): Msg {
  const perMillion = Math.round(share * 1_000_000);
  return perMillion % 10_000 === 0 ? { numerator: perMillion / 10_000, denominator: 'HUNDRED' } : { numerator: perMillion, denominator: 'MILLION' };
}

function retryPolicy(p: RoutePolicy): Msg {
  const out: Msg = {};
  if (p.retry) {
    out.retry_on = p.retry.on.join(',');
    out.num_retries = { value: p.retry.attempts };
    if (p.retry.codes.length > 0) out.retriable_status_codes = p.retry.codes;
    if (p.retry.backoffBaseMs !== undefined) {
      out.retry_back_off = { base_interval: duration(p.retry.backoffBaseMs) };
      if (p.retry.backoffMaxMs !== undefined) (out.retry_back_off as Msg).max_interval = duration(p.retry.backoffMaxMs);
    }
  }
  if (p.perTryTimeoutMs !== undefined) out.per_try_timeout = duration(p.perTryTimeoutMs);
  return out;
}

function hashPolicy(h: NonNullable<RoutePolicy['hash']>[number]): Msg {
  switch (h.kind) {
    case 'header':
      return { header: { header_name: h.name } };
    case 'cookie': {
      const c: Msg = { name: h.name };
      if (h.ttlMs !== undefined) c.ttl = duration(h.ttlMs);
      if (h.path !== undefined) c.path = h.path;
      return { cookie: c };
    }
    case 'sourceIp':
      return { connection_properties: { source_ip: true } };
    case 'query':
      return { query_parameter: { name: h.name } };
  }
}

/** A FaultInjection as the per-route config of Envoy's HTTP fault filter. */
export function httpFault(f: NonNullable<RoutePolicy['fault']>): Msg {
  const out: Msg = {};
  if (f.delay) out.delay = { fixed_delay: duration(f.delay.ms), percentage: fractionalPercent(f.delay.fraction) };
  if (f.abort) {
    const a: Msg = { percentage: fractionalPercent(f.abort.fraction) };
    if (f.abort.httpStatus !== undefined) a.http_status = f.abort.httpStatus;
    if (f.abort.grpcStatus !== undefined) a.grpc_status = f.abort.grpcStatus;
    out.abort = a;
  }
  return out;
}

/**
 * A path rewrite. ReplacePrefixMatch "/" (validation turns "" into "/") cannot be an Envoy prefix_rewrite: Envoy
 * would keep the slash after the prefix ("/foo/bar" -> "//bar"), so it is regex_rewrite `^<prefix>/*` -> "/".
 */
function pathRewrite(p: NonNullable<UrlRewrite['path']>): Msg {
  if (p.kind === 'full') return { regex_rewrite: { pattern: { regex: FULL_PATH_PATTERN }, substitution: p.value } };
  if (p.value === '/') return { regex_rewrite: { pattern: { regex: `^${escapeRegex(p.match)}/*` }, substitution: '/' } };
  return { prefix_rewrite: p.value };
}

function encodeRedirect(d: Redirect): Msg {
  const out: Msg = { response_code: REDIRECT_CODES[d.status] };
  if (d.scheme) out.scheme_redirect = d.scheme;
  if (d.hostname) out.host_redirect = d.hostname;
  if (d.port !== undefined) out.port_redirect = d.port;
  if (d.path?.kind === 'full') out.path_redirect = d.path.value;
  else if (d.path) Object.assign(out, pathRewrite(d.path));
  return out;
}

export function encodeRoute(r: Route, proxyless = false): Msg[] {
  const source: Record<string, JsonValue> = { kind: r.source.kind, namespace: r.source.namespace, name: r.source.name };
  if (r.source.rule !== undefined) source.rule = r.source.rule;
  const matches = r.matches.length > 0 ? r.matches : [{ headers: [], query: [] } as RouteMatch];
  return matches.map((m) => {
    const out: Msg = { name: r.name, match: encodeMatch(m, proxyless), metadata: { filter_metadata: { [METADATA_NAMESPACE]: toStruct(source) } } };
    encodeHeaders(out, 'request', r.requestHeaders);
    encodeHeaders(out, 'response', r.responseHeaders);
    const a = r.action;
    if (a.kind === 'forward' && r.policy?.fault) out.typed_per_filter_config = { [HTTP_FAULT_FILTER]: anyOf(HTTP_FAULT_TYPE, httpFault(r.policy.fault)) };
    if (a.kind === 'forward') out.route = encodeForward(a, r);
    else if (a.kind === 'redirect') out.redirect = encodeRedirect(a.redirect);
    else out.direct_response = a.body === undefined ? { status: a.status } : { status: a.status, body: { inline_string: a.body } };
    return out;
  });
}

/**
 * The RouteConfiguration of `table`. Agents' tables have one virtual host `*`; proxyless clients' (`domains`
 * given) keep the Service's names, which grpc-js-xds matches the target's authority against.
 */
export function buildRouteTableConfig(table: RouteTable, proxylessDomains?: string[]): Msg {
  const proxyless = proxylessDomains !== undefined;
  return {
    name: table.name,
    virtual_hosts: [{ name: table.name, domains: proxylessDomains ?? ['*'], routes: table.routes.flatMap((r) => encodeRoute(r, proxyless)) }],
  };
}
