// Unit: per-request layers on fake handlers: the timeout layer's answers and cancellation, the router's
// matching, prefix rewrites, redirects and weights, header mutations, and grpc-timeout parsing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpConn } from '../../src/proxy/http/conn';
import { newRequestContext } from '../../src/proxy/http/exchange';
import { applyMutation, prefixMatches, redirectLocation, replacePrefix, routerLayer } from '../../src/proxy/http/layers/router';
import { formatGrpcTimeout, parseGrpcTimeout, timeoutLayer } from '../../src/proxy/http/layers/timeout';
import type { Handler, L7Request, L7Response } from '../../src/proxy/http/request';
import { RouteStore, type Route } from '../../src/state/routes';
import { ServiceStore } from '../../src/state/services';
import { testConn } from '../helpers/http-conn';

const conn = (service: HttpConn['service'] = null): HttpConn => testConn({ service });

function request(path: string, headers: Record<string, string> = {}, method = 'GET'): L7Request {
  return { method, path, authority: 'web.default:80', scheme: 'http', headers: { ...headers }, body: null, version: 'http1' };
}

const ok = (req: L7Request): Promise<L7Response> => Promise.resolve({ status: 200, headers: { 'x-path': req.path, 'x-authority': req.authority }, body: null });

describe('timeout layer', () => {
  it('answers 504 with UT and cancels the attempt when the route timeout passes first', async () => {
    const rc = newRequestContext(conn(), {});
    rc.route = { name: 'r', source: { kind: 'default', namespace: '', name: '' }, matches: [], action: { kind: 'respond', status: 200 }, policy: { timeoutMs: 30 } };
    let cancelled = false;
    const never: Handler = (_req, c) => {
      c.onAbort = () => (cancelled = true);
      return new Promise(() => undefined);
    };
    const a = await timeoutLayer()(never)(request('/'), rc);
    assert.equal(a.status, 504);
    assert.deepEqual(rc.flags, ['UT']);
    assert.ok(cancelled);
  });

  it('answers a gRPC request DEADLINE_EXCEEDED (trailers-only) at its grpc-timeout and passes the budget on', async () => {
    const req = request('/svc/M', { 'content-type': 'application/grpc', 'grpc-timeout': '40m' }, 'POST');
    const rc = newRequestContext(conn(), req.headers);
    let seen: string | undefined;
    const a = await timeoutLayer()((r) => {
      seen = r.headers['grpc-timeout'] as string;
      return new Promise(() => undefined);
    })(req, rc);
    assert.equal(seen, '40m');
    assert.equal(a.status, 200);
    assert.equal(a.trailers?.['grpc-status'], '4');
  });

  it('does nothing without a timeout, and lets a quick answer through', async () => {
    const rc = newRequestContext(conn(), {});
    assert.equal((await timeoutLayer()(ok)(request('/'), rc)).status, 200);
    assert.deepEqual(rc.flags, []);
  });

  it('parses grpc-timeout units and refuses malformed values', () => {
    assert.equal(parseGrpcTimeout('2S'), 2000);
    assert.equal(parseGrpcTimeout('1M'), 60000);
    assert.equal(parseGrpcTimeout('500u'), 0.5);
    assert.equal(parseGrpcTimeout('123456789m'), null);
    assert.equal(parseGrpcTimeout('1.5S'), null);
    assert.equal(parseGrpcTimeout(undefined), null);
    assert.equal(formatGrpcTimeout(0.2), '1m');
  });

  it('passes on a budget over 8 digits of milliseconds in a coarser unit, never shorter (fuzz: http-headers)', () => {
    // From the fuzzer: a client's grpc-timeout of 9999M came back out as "599940000m", which gRPC's 8-digit
    // TimeoutValue does not allow, so the upstream got a malformed deadline.
    assert.equal(formatGrpcTimeout(parseGrpcTimeout('9999M')!), '599940S');
    assert.equal(formatGrpcTimeout(99_999_999), '99999999m');
    assert.equal(formatGrpcTimeout(100_000_000.5), '100001S');
    assert.equal(formatGrpcTimeout(parseGrpcTimeout('99999999H')!), '99999999H');
    for (const v of ['99999999S', '99999999M', '12345678H', '1n']) {
      const ms = parseGrpcTimeout(v)!;
      const back = parseGrpcTimeout(formatGrpcTimeout(ms));
      assert.ok(back !== null && back >= ms, `${v}: ${formatGrpcTimeout(ms)}`);
    }
  });
});

describe('router layer', () => {
  const route = (name: string, r: Partial<Route>): Route => ({ name, source: { kind: 'HTTPRoute', namespace: 'default', name }, matches: [], action: { kind: 'forward', backends: [{ cluster: 'c1', weight: 1 }] }, ...r });
  const services = new ServiceStore();
  services.replaceClusters([
    { name: 'c1', host: 'a.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' },
    { name: 'c2', host: 'b.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' },
  ]);
  const routes = new RouteStore();
  const sp = { vip: '10.96.0.1', port: 80, cluster: 'c1', protocol: 'http' as const, routeTable: 't', consumerRouteTables: { team: 't-team' } };
  // One layer, as in the agent: its weighted round robin keeps state across requests.
  const router = routerLayer({ services, routes })(ok);
  const run = async (req: L7Request, c = conn(sp)): Promise<{ a: L7Response; cluster: string | null; route: string | null }> => {
    const rc = newRequestContext(c, req.headers);
    const a = await router(req, rc);
    return { a, cluster: rc.cluster?.name ?? null, route: rc.route?.name ?? null };
  };

  it('matches path kinds, method, headers (exact, regex, present, inverted) and query, first match wins', async () => {
    routes.replace([
      {
        name: 't',
        routes: [
          route('exact', { matches: [{ path: { kind: 'exact', value: '/exact' }, headers: [], query: [] }] }),
          route('regex', { matches: [{ path: { kind: 'regex', value: '/v[0-9]+/.*' }, headers: [], query: [] }] }),
          route('hdr', { matches: [{ headers: [{ name: 'x-env', kind: 'regex', value: 'pro?d' }, { name: 'x-debug', kind: 'present', value: '', invert: true }], query: [] }] }),
          route('query', { matches: [{ headers: [], query: [{ name: 'canary', kind: 'exact', value: 'yes' }] }] }),
          route('post', { matches: [{ method: 'POST', headers: [], query: [] }] }),
          route('prefix', { matches: [{ path: { kind: 'prefix', value: '/api/' }, headers: [], query: [] }] }),
        ],
      },
    ]);
    assert.equal((await run(request('/exact'))).route, 'exact');
    assert.equal((await run(request('/exact/'))).a.status, 404);
    assert.equal((await run(request('/v12/x'))).route, 'regex');
    assert.equal((await run(request('/other', { 'x-env': 'prod' }))).route, 'hdr');
    assert.equal((await run(request('/other', { 'x-env': 'prod', 'x-debug': '1' }))).a.status, 404);
    assert.equal((await run(request('/other?a=1&canary=yes&canary=no'))).route, 'query');
    assert.equal((await run(request('/other?canary=no&canary=yes'))).a.status, 404, 'the first of repeated parameters counts');
    assert.equal((await run(request('/other', {}, 'POST'))).route, 'post');
    assert.equal((await run(request('/api'))).route, 'prefix');
    assert.equal((await run(request('/apix'))).a.status, 404);
    const nr = await run(request('/nothing'));
    assert.equal(nr.a.status, 404);
  });

  it('uses the consumer table of the client namespace (GAMMA), else the producer table', async () => {
    routes.replace([
      { name: 't', routes: [route('producer', { action: { kind: 'forward', backends: [{ cluster: 'c1', weight: 1 }] } })] },
      { name: 't-team', routes: [route('consumer', { action: { kind: 'forward', backends: [{ cluster: 'c2', weight: 1 }] } })] },
    ]);
    assert.deepEqual((await run(request('/'))).cluster, 'c1');
    const team = conn(sp);
    team.pod = { ...team.pod, namespace: 'team' };
    assert.deepEqual((await run(request('/'), team)).cluster, 'c2');
  });

  it('splits by weight exactly (0 never chosen), answers 500 for an invalid backend, mutates headers', async () => {
    routes.replace([
      {
        name: 't',
        routes: [
          route('bad', { matches: [{ path: { kind: 'prefix', value: '/bad' }, headers: [], query: [] }], action: { kind: 'forward', backends: [{ cluster: 'gone', weight: 1, invalid: 'Service default/gone not found' }] } }),
          route('split', {
            action: {
              kind: 'forward',
              backends: [
                { cluster: 'c1', weight: 2 },
                { cluster: 'c2', weight: 1, requestHeaders: { set: [['x-backend', 'c2']], add: [], remove: [] } },
                { cluster: 'c1', weight: 0 },
              ],
            },
            requestHeaders: { set: [['x-set', 'v']], add: [['x-add', 'b']], remove: ['x-remove'] },
            responseHeaders: { set: [['x-resp', 'r']], add: [], remove: ['x-path'] },
          }),
        ],
      },
    ]);
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push((await run(request('/'))).cluster!);
    assert.equal(seen.filter((c) => c === 'c2').length, 3);
    const bad = await run(request('/bad'));
    assert.equal(bad.a.status, 500);
    const r = request('/', { 'x-add': 'a', 'x-remove': 'gone' });
    const rc = newRequestContext(conn(sp), r.headers);
    const a = await router(r, rc);
    assert.equal(r.headers['x-set'], 'v');
    assert.equal(r.headers['x-add'], 'a,b');
    assert.equal(r.headers['x-remove'], undefined);
    assert.equal(a.headers['x-resp'], 'r');
    assert.equal(a.headers['x-path'], undefined);
  });

  it('prefix semantics, prefix replacement and redirect Location per Gateway API', () => {
    assert.ok(prefixMatches('/foo', '/foo'));
    assert.ok(prefixMatches('/foo', '/foo/bar'));
    assert.ok(prefixMatches('/foo/', '/foo'));
    assert.ok(!prefixMatches('/foo', '/foobar'));
    assert.ok(prefixMatches('/', '/anything'));
    assert.equal(replacePrefix('/prefix/one/two', '/prefix/one', '/one'), '/one/two');
    assert.equal(replacePrefix('/strip-prefix/three', '/strip-prefix', '/'), '/three');
    assert.equal(replacePrefix('/strip-prefix', '/strip-prefix', '/'), '/');
    assert.equal(replacePrefix('/prefix/one', '/prefix/one', '/one'), '/one');
    assert.equal(replacePrefix('/a/b', '/a', '/x/'), '/x/b');
    const req = request('/old/page?q=1');
    assert.equal(redirectLocation(req, { status: 302 }, null), 'http://web.default:80/old/page?q=1'.replace(':80', ''));
    assert.equal(redirectLocation(req, { status: 301, hostname: 'example.org' }, null), 'http://example.org/old/page?q=1');
    assert.equal(redirectLocation(req, { status: 301, scheme: 'https' }, null), 'https://web.default/old/page?q=1');
    assert.equal(redirectLocation(req, { status: 301, port: 8443 }, null), 'http://web.default:8443/old/page?q=1');
    assert.equal(redirectLocation(req, { status: 301, path: { kind: 'prefix', match: '/old', value: '/new' } }, '/old'), 'http://web.default/new/page?q=1');
    assert.equal(redirectLocation(req, { status: 301, path: { kind: 'full', value: '/x' } }, null), 'http://web.default/x?q=1');
  });

  it('applyMutation appends with a comma, sets, removes', () => {
    const h: Record<string, string | string[] | undefined> = { a: '1', c: 'x' };
    applyMutation(h, { set: [['b', '2']], add: [['a', '3'], ['d', '4']], remove: ['c'] });
    assert.deepEqual(h, { a: '1,3', b: '2', d: '4' });
  });
});
