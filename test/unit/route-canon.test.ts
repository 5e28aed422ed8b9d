// Unit: decoded route tables share their repeated parts (match lists, sources, policies, a rule's route in
// several tables), every part is frozen, and a shared table routes and dumps exactly as an unshared copy does.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildRouteTableConfig } from '../../src/controlplane/routes/rds';
import type { HttpConn } from '../../src/proxy/http/conn';
import { withEffectivePolicies } from '../../src/proxy/http/effective-policy';
import { newRequestContext } from '../../src/proxy/http/exchange';
import { routerLayer } from '../../src/proxy/http/layers/router';
import type { L7Request, L7Response } from '../../src/proxy/http/request';
import { RouteStore, type Route, type RouteTable } from '../../src/state/routes';
import { ServiceStore } from '../../src/state/services';
import { decodeResource } from '../../src/xds/agent-resources';
import { toAny } from '../../src/xds/protos';
import { RDS, ROUTE_TYPE } from '../../src/xds/resource-types';
import { Canon, EMPTY } from '../../src/xds/canon';
import { testConn } from '../helpers/http-conn';

function decode(t: RouteTable): RouteTable {
  const r = decodeResource(RDS, toAny(ROUTE_TYPE, buildRouteTableConfig(t))).resource;
  assert.equal(r.kind, 'routes');
  return (r as { table: RouteTable }).table;
}

/** The control plane's table for a Service port without routes (route-tables.ts defaultRoute). */
function defaultTable(i: number): RouteTable {
  return {
    name: `routes|svc-${i}.ns.svc.cluster.local:80`,
    routes: [{ name: 'default', source: { kind: 'default', namespace: '', name: '' }, matches: [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }], action: { kind: 'forward', backends: [{ cluster: `outbound|80||svc-${i}.ns.svc.cluster.local`, weight: 1 }] } }],
  };
}

const source = (rule: string): Route['source'] => ({ kind: 'HTTPRoute', namespace: 'ns', name: 'web', rule });

/** One HTTPRoute's rules as the table of each port it attaches to has them. */
function ruleRoutes(): Route[] {
  return [
    {
      name: 'ns/web/split',
      source: source('split'),
      matches: [{ path: { kind: 'prefix', value: '/api' }, headers: [{ name: 'x-canary', kind: 'exact', value: 'true' }], query: [{ name: 'q', kind: 'regex', value: 'a|b' }], method: 'POST' }],
      action: { kind: 'forward', backends: [{ cluster: 'c1', weight: 3 }, { cluster: 'c2', weight: 1, responseHeaders: { set: [], add: [['x-backend', 'c2']], remove: [] } }] },
      requestHeaders: { set: [['x-set', 'a']], add: [], remove: ['x-drop'] },
      policy: { timeoutMs: 5000, retry: { attempts: 3, on: ['5xx'], codes: [503] } },
    },
    { name: 'ns/web/strip', source: source('strip'), matches: [{ path: { kind: 'prefix', value: '/strip' }, headers: [], query: [] }], action: { kind: 'forward', backends: [{ cluster: 'c2', weight: 1 }], rewrite: { path: { kind: 'prefix', match: '/strip', value: '/' } } } },
    { name: 'ns/web/old', source: source('old'), matches: [{ path: { kind: 'prefix', value: '/old' }, headers: [], query: [] }], action: { kind: 'redirect', redirect: { status: 301, path: { kind: 'prefix', match: '/old', value: '/new' } } } },
    { name: 'ns/web/teapot', source: source('teapot'), matches: [{ path: { kind: 'exact', value: '/tea' }, headers: [], query: [] }], action: { kind: 'respond', status: 418, body: 'short and stout' } },
    { name: 'ns/web/rest', source: source('rest'), matches: [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }], action: { kind: 'forward', backends: [{ cluster: 'c1', weight: 1 }] } },
  ];
}

/** Every object and array in `v`, with where it is. */
function parts(v: unknown, at = 'table', out: [string, object][] = []): [string, object][] {
  if (typeof v !== 'object' || v === null) return out;
  out.push([at, v]);
  for (const [k, x] of Object.entries(v)) parts(x, `${at}.${k}`, out);
  return out;
}

const conn = (sp: HttpConn['service']): HttpConn => testConn({ service: sp });

/** What a router over `tables` does with each request: status, route, cluster, path and headers sent on. */
async function outcomes(tables: RouteTable[], table: string): Promise<unknown[]> {
  const services = new ServiceStore();
  services.replaceClusters(['c1', 'c2'].map((name) => ({ name, host: `${name}.ns.svc.cluster.local`, lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' })));
  const routes = new RouteStore();
  routes.replace(tables);
  const router = routerLayer({ services, routes })((req) => Promise.resolve<L7Response>({ status: 200, headers: { 'x-path': req.path, 'x-set': String(req.headers['x-set']), 'x-drop': String(req.headers['x-drop']) }, body: null }));
  const sp = { vip: '10.96.0.1', port: 80, cluster: 'c1', protocol: 'http' as const, routeTable: table };
  const out: unknown[] = [];
  const requests: [string, string, Record<string, string>][] = [
    ...Array.from({ length: 8 }, (): [string, string, Record<string, string>] => ['POST', '/api/x?q=a', { 'x-canary': 'true', 'x-drop': '1' }]),
    ['GET', '/api/x?q=a', { 'x-canary': 'true' }],
    ['POST', '/api/x?q=c', { 'x-canary': 'true' }],
    ['GET', '/strip/a/b', {}],
    ['GET', '/old/page?z=1', {}],
    ['GET', '/tea', {}],
    ['GET', '/tea/', {}],
  ];
  for (const [method, path, headers] of requests) {
    const req: L7Request = { method, path, authority: 'web.ns:80', scheme: 'http', headers: { ...headers }, body: null, version: 'http1' };
    const rc = newRequestContext(conn(sp), req.headers);
    const a = await router(req, rc);
    out.push({ status: a.status, headers: a.headers, route: rc.route?.name ?? null, cluster: rc.cluster?.name ?? null });
  }
  return out;
}

describe('decoded route tables', () => {
  it('default tables share the match list, path, source and empty lists; each keeps its own backend', () => {
    const tables = [0, 1, 2].map((i) => decode(defaultTable(i)));
    tables.forEach((t, i) => assert.deepEqual(t, defaultTable(i)));
    const [a, b, c] = tables.map((t) => t.routes[0]!);
    assert.equal(a!.matches, b!.matches);
    assert.equal(a!.matches, c!.matches);
    assert.equal(a!.source, b!.source);
    assert.equal(a!.matches[0]!.headers, EMPTY);
    assert.equal(a!.matches[0]!.query, EMPTY);
    assert.notEqual(a!.action, b!.action);
    assert.notEqual(a, b);
  });

  it('a rule recurring in two tables is one route instance in both, and the tables are what the control plane sent', () => {
    const one = decode({ name: 'routes|web.ns.svc.cluster.local:80', routes: ruleRoutes() });
    const two = decode({ name: 'routes|web.ns.svc.cluster.local:8080', routes: ruleRoutes() });
    assert.deepEqual(one.routes, ruleRoutes());
    assert.deepEqual(two.routes, ruleRoutes());
    for (let i = 0; i < one.routes.length; i++) {
      const [x, y] = [one.routes[i]!, two.routes[i]!];
      // A route to one cluster and nothing else is not keyed (the default route's shape), but its parts are.
      if (x.name === 'ns/web/rest') {
        assert.notEqual(x, y);
        assert.equal(x.matches, y.matches);
        assert.equal(x.source, y.source);
      } else assert.equal(x, y, x.name);
    }
  });

  it('are frozen through and through: a reader that writes fails instead of changing every table sharing the part', () => {
    const t = decode({ name: 'routes|web.ns.svc.cluster.local:80', routes: [...ruleRoutes(), ...defaultTable(7).routes] });
    for (const [at, p] of parts(t)) assert.ok(Object.isFrozen(p), `${at} is frozen`);
    const split = t.routes[0]!;
    assert.throws(() => split.matches[0]!.headers.push({ name: 'x', kind: 'present', value: '' }), TypeError);
    assert.throws(() => (split.matches[0]!.path!.value = '/'), TypeError);
    assert.throws(() => (split.policy!.retry!.attempts = 0), TypeError);
    assert.throws(() => (split.source.name = 'other'), TypeError);
    assert.throws(() => t.routes[t.routes.length - 1]!.matches[0]!.query.push({ name: 'x', kind: 'present', value: '' }), TypeError);
    assert.throws(() => t.routes.pop(), TypeError);
    assert.equal(EMPTY.length, 0);
  });

  it('route, answer and dump exactly as unshared, unfrozen copies of the same tables', async () => {
    const decoded = [decode({ name: 't1', routes: ruleRoutes() }), decode({ name: 't2', routes: ruleRoutes() }), decode(defaultTable(1))];
    const copies = JSON.parse(JSON.stringify(decoded)) as RouteTable[];
    assert.ok(!Object.isFrozen(copies[0]!.routes[0]!.matches));
    assert.notEqual(copies[0]!.routes[0], copies[1]!.routes[0]);
    for (const name of ['t1', 't2']) assert.deepEqual(await outcomes(decoded, name), await outcomes(copies, name), name);
    const seen = (await outcomes(decoded, 't1')) as { status: number; route: string; cluster: string | null }[];
    assert.deepEqual(
      seen.map((o) => `${o.status} ${o.route} ${o.cluster}`),
      [...['c1', 'c1', 'c2', 'c1', 'c1', 'c1', 'c2', 'c1'].map((c) => `200 ns/web/split ${c}`), '200 ns/web/rest c1', '200 ns/web/rest c1', '200 ns/web/strip c2', '301 ns/web/old null', '418 ns/web/teapot null', '200 ns/web/rest c1'],
    );
    assert.equal(JSON.stringify(withEffectivePolicies(decoded)), JSON.stringify(withEffectivePolicies(copies)));
  });
});

describe('RouteStore', () => {
  it('holds tables frozen: the structured clone a worker gets keeps the sharing and is frozen again on replace', () => {
    const decoded = [decode({ name: 't1', routes: ruleRoutes() }), decode({ name: 't2', routes: ruleRoutes() }), decode(defaultTable(1)), decode(defaultTable(2))];
    const clone = structuredClone(decoded);
    assert.ok(!Object.isFrozen(clone[0]));
    const store = new RouteStore();
    store.replace(clone);
    for (const t of store.all()) for (const [at, p] of parts(t)) assert.ok(Object.isFrozen(p), `${t.name} ${at} is frozen`);
    assert.equal(store.get('t1')!.routes[0], store.get('t2')!.routes[0]);
    assert.equal(store.get(defaultTable(1).name)!.routes[0]!.matches, store.get(defaultTable(2).name)!.routes[0]!.matches);
    const more = structuredClone([decode(defaultTable(3))]);
    store.update(['t2'], more);
    assert.ok(Object.isFrozen(store.get(defaultTable(3).name)!.routes[0]!.action));
    assert.deepEqual(
      store.all().map((t) => t.name),
      ['t1', defaultTable(1).name, defaultTable(2).name, defaultTable(3).name],
    );
  });
});

describe('Canon', () => {
  it('gives one frozen instance per kind and JSON form, never one for a different form', () => {
    const canon = new Canon();
    const a = canon.share('source', { kind: 'HTTPRoute', namespace: 'ns', name: 'web' });
    assert.ok(Object.isFrozen(a));
    assert.equal(canon.share('source', { kind: 'HTTPRoute', namespace: 'ns', name: 'web' }), a);
    assert.notEqual(canon.share('source', { kind: 'HTTPRoute', namespace: 'ns', name: 'web', rule: 'r' }), a);
    assert.notEqual(canon.share('other', { kind: 'HTTPRoute', namespace: 'ns', name: 'web' }), a);
    // invert false and no invert read the same in the router, but /config_dump shows them apart: not merged
    const h = canon.share('header', { name: 'x', kind: 'present', value: '', invert: false });
    assert.notEqual(canon.share('header', { name: 'x', kind: 'present', value: '' }), h);
  });

  it('stays bounded: past its count or key characters it starts over; a part with a long form is frozen, not kept', () => {
    const canon = new Canon(4, 1000);
    for (let i = 0; i < 10; i++) canon.share('path', { kind: 'exact', value: `/p${i}` });
    assert.ok(canon.size().parts <= 4);
    for (let i = 0; i < 10; i++) canon.share('path', { kind: 'exact', value: `/${String(i).repeat(300)}` });
    assert.ok(canon.size().keyChars <= 1000);
    const long = { kind: 'regex', value: 'x'.repeat(3000) };
    const before = canon.size();
    assert.equal(canon.share('path', long), long);
    assert.ok(Object.isFrozen(long));
    assert.deepEqual(canon.size(), before);
    assert.notEqual(canon.share('path', { kind: 'regex', value: 'x'.repeat(3000) }), long);
  });
});
