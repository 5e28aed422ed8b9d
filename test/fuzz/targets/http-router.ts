// Fuzz target http-router: the L7 router's request matching and rewrites (src/proxy/http/layers/router.ts):
// route tables built from the input (path exact/prefix/regex, method, header and query matches, redirects,
// rewrites, weighted backends) and requests built from the input, through routerLayer as the agent stacks it,
// plus its exported helpers.
//
// Invariant:
// - the router never throws or rejects: every request gets an answer (a forward, a redirect, a local reply)
//   with a status 100-599;
// - prefixMatches follows Gateway API PathPrefix (element-wise: `/foo` matches `/foo` and `/foo/...`, never
//   `/foobar`, and a trailing slash on the prefix changes nothing);
// - replacePrefix on a matching path keeps what followed the prefix and never makes `//` where neither the
//   path nor the replacement had one;
// - a redirect's Location is an absolute URL with the scheme asked for.

import { newRequestContext } from '../../../src/proxy/http/exchange';
import { prefixMatches, redirectLocation, replacePrefix, routerLayer } from '../../../src/proxy/http/layers/router';
import type { L7Request, L7Response } from '../../../src/proxy/http/request';
import { RouteStore, type Route, type RouteMatch } from '../../../src/state/routes';
import { ServiceStore } from '../../../src/state/services';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';
import { testConn } from '../../helpers/http-conn';

/** Regexes as the control plane lets through (RE2 syntax that JavaScript reads the same way). */
const REGEXES = ['/v[0-9]+/.*', '.*', 'pro?d', '[a-z]+', '/api/(users|orders)/[0-9]{1,6}', '(a|b)*c', '\\d+'];
const PATHS = ['/', '/foo', '/foo/', '/foo/bar', '/foobar', '/api', '/api/', '//', '/a//b', ''];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'CONNECT', 'get'];

const services = new ServiceStore();
services.replaceClusters([
  { name: 'c1', host: 'a.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' },
  { name: 'c2', host: 'b.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' },
]);
const answer = (req: L7Request): Promise<L7Response> => Promise.resolve({ status: 200, headers: { 'x-path': req.path }, body: null });
const sp = { vip: '10.96.0.1', port: 80, cluster: 'c1', protocol: 'http' as const, routeTable: 't' };
const conn = testConn({ service: sp });

function str(input: FuzzInput, options: readonly string[], max = 24): string {
  return input.bool() ? input.pick(options) : input.string(max);
}

function match(input: FuzzInput): RouteMatch {
  const m: RouteMatch = { headers: [], query: [] };
  const p = input.int(4);
  if (p === 1) m.path = { kind: 'exact', value: str(input, PATHS) };
  if (p === 2) m.path = { kind: 'prefix', value: '/' + str(input, PATHS).replace(/^\//, '') };
  if (p === 3) m.path = { kind: 'regex', value: input.pick(REGEXES) };
  if (input.bool()) m.method = input.pick(METHODS);
  for (let i = input.int(3); i > 0; i--) {
    const kind = input.pick(['exact', 'regex', 'present'] as const);
    m.headers.push({ name: input.pick(['x-env', 'host', 'x-a']), kind, value: kind === 'regex' ? input.pick(REGEXES) : input.string(8), invert: input.bool() });
  }
  for (let i = input.int(2); i > 0; i--) {
    const kind = input.pick(['exact', 'regex', 'present'] as const);
    m.query.push({ name: input.string(6), kind, value: kind === 'regex' ? input.pick(REGEXES) : input.string(8) });
  }
  return m;
}

function route(input: FuzzInput, i: number): Route {
  const matches = Array.from({ length: input.int(3) }, () => match(input));
  const kind = input.int(3);
  const base = { name: `r${i}`, source: { kind: 'HTTPRoute' as const, namespace: 'default', name: `r${i}` }, matches };
  if (kind === 0) {
    const redirect = {
      scheme: input.pick([undefined, 'http', 'https'] as const),
      hostname: input.bool() ? input.pick(['example.com', 'b.default']) : undefined,
      port: input.bool() ? input.int(65536) : undefined,
      path: input.bool() ? { kind: 'full' as const, value: str(input, PATHS) } : input.bool() ? { kind: 'prefix' as const, match: '/foo', value: str(input, PATHS) } : undefined,
      status: input.pick([301, 302, 303, 307, 308] as const),
    };
    return { ...base, action: { kind: 'redirect', redirect } };
  }
  if (kind === 1) return { ...base, action: { kind: 'respond', status: 100 + input.int(500) } };
  const backends = Array.from({ length: 1 + input.int(3) }, () => ({ cluster: input.pick(['c1', 'c2', 'missing']), weight: input.int(4) }));
  const path = input.bool() ? { kind: 'prefix' as const, match: '/foo', value: str(input, PATHS) } : undefined;
  return { ...base, action: { kind: 'forward', backends, rewrite: { hostname: input.bool() ? 'rewritten' : undefined, path } } };
}

async function run(data: Buffer): Promise<void> {
  const input = new FuzzInput(data);
  const prefix = str(input, PATHS);
  const path = str(input, PATHS, 48);
  const value = str(input, PATHS);
  if (prefix.startsWith('/')) {
    const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    const expected = p === '/' || path === p || path.startsWith(`${p}/`);
    check(prefixMatches(prefix, path) === expected, `prefixMatches(${JSON.stringify(prefix)}, ${JSON.stringify(path)}) is ${!expected}`);
    if (expected && path.startsWith('/') && value.startsWith('/')) {
      const out = replacePrefix(path, prefix, value);
      const rest = p === '/' ? path.slice(1) : path.slice(p.length).replace(/^\//, '');
      check(out.endsWith(rest), `replacePrefix(${JSON.stringify(path)}, ${JSON.stringify(prefix)}, ${JSON.stringify(value)}) lost ${JSON.stringify(rest)}: ${out}`);
      check(!out.includes('//') || path.includes('//') || value.includes('//'), `replacePrefix(${JSON.stringify(path)}, ${JSON.stringify(prefix)}, ${JSON.stringify(value)}) made ${out}`);
    }
  }
  const routes = new RouteStore();
  routes.replace([{ name: 't', routes: Array.from({ length: 1 + input.int(4) }, (_, i) => route(input, i)) }]);
  const router = routerLayer({ services, routes })(answer);
  for (let n = 1 + input.int(3); n > 0; n--) {
    const headers: Record<string, string> = {};
    for (let i = input.int(3); i > 0; i--) headers[input.pick(['x-env', 'x-a', 'host', 'content-type'])] = input.string(8);
    const req: L7Request = { method: input.pick(METHODS), path: str(input, PATHS, 48) + (input.bool() ? `?${input.string(16)}` : ''), authority: str(input, ['web.default:80', '[::1]:8080', 'web', 'web:443', ':'], 16), scheme: input.pick(['http', 'https']), headers, body: null, version: 'http1' };
    const rc = newRequestContext(conn, req.headers);
    const a = await router(req, rc);
    check(Number.isInteger(a.status) && a.status >= 100 && a.status <= 599, `answered status ${a.status}`);
    const location = a.headers.location;
    if (typeof location === 'string' && rc.route?.action.kind === 'redirect') {
      const scheme = rc.route.action.redirect.scheme ?? req.scheme;
      check(location.startsWith(`${scheme}://`), `Location ${location} for scheme ${scheme}`);
    }
  }
  redirectLocation({ method: 'GET', path, authority: value, scheme: 'http', headers: {}, body: null, version: 'http1' }, { status: 301, path: { kind: 'prefix', match: prefix, value } }, prefix);
}

export const target: FuzzTarget = { mode: 'async', maxLen: 1024, run };
