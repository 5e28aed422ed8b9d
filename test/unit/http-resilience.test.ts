// Unit: the resilience layers on fake upstreams: retries (conditions, other endpoints, replayable bodies,
// both budgets), breakers (UO at the limits), outlier detection (ejection, its cap, the return), faults
// (their shares) and mirrors (fire and forget).

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ClusterStates } from '../../src/proxy/http/cluster-state';
import { newRequestContext } from '../../src/proxy/http/exchange';
import { balanceLayer } from '../../src/proxy/http/layers/balance';
import { breakerLayer } from '../../src/proxy/http/layers/breaker';
import { faultLayer } from '../../src/proxy/http/layers/fault';
import { mirrorLayer } from '../../src/proxy/http/layers/mirror';
import { observeLayer } from '../../src/proxy/http/layers/observe';
import { retryLayer } from '../../src/proxy/http/layers/retry';
import { compose, localReply, type Handler, type L7Request, type L7Response, type RequestContext } from '../../src/proxy/http/request';
import type { Route } from '../../src/state/routes';
import { ServiceStore, type ClusterInfo, type ClusterPolicy, type EndpointInfo } from '../../src/state/services';
import { WorkloadStore } from '../../src/state/workloads';
import { ResilienceMetrics } from '../../src/telemetry/resilience-metrics';
import { testConn } from '../helpers/http-conn';

const conn = testConn();

const EPS: EndpointInfo[] = [1, 2, 3].map((i) => ({ ip: `10.1.0.${i}`, port: 8080, pod: `p${i}`, namespace: 'default', inMesh: false }));

function setup(policy: ClusterPolicy = {}, route: Partial<Route> = {}) {
  const services = new ServiceStore();
  const cluster: ClusterInfo = { name: 'c', host: 'svc.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http', policy: { lb: { kind: 'round_robin' }, ...policy } };
  services.replaceClusters([cluster, { ...cluster, name: 'mirror' }]);
  services.replaceEndpoints(new Map([['c', EPS], ['mirror', [EPS[0]!]]]));
  const states = new ClusterStates();
  const registry = new Registry();
  const metrics = new ResilienceMetrics(registry);
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const fullRoute: Route = { name: 'r', source: { kind: 'default', namespace: '', name: '' }, matches: [], action: { kind: 'forward', backends: [{ cluster: 'c', weight: 1 }] }, ...route };
  const stack = (upstream: Handler): Handler =>
    compose(
      [
        retryLayer({ states, metrics, now: clock.now, random: () => 0 }),
        breakerLayer({ states, metrics }),
        balanceLayer({ services, workloads: new WorkloadStore(), mesh: null, states, locality: { node: 'n1' }, now: clock.now, random: () => 0 }),
        observeLayer({ states, metrics, endpointsOf: (c) => services.endpointsOf(c), now: clock.now }),
      ],
      upstream,
    );
  const ctx = (req: L7Request): RequestContext => {
    const rc = newRequestContext(conn, req.headers);
    rc.cluster = services.cluster('c')!;
    rc.route = fullRoute;
    return rc;
  };
  return { services, states, registry, metrics, clock, stack, ctx, route: fullRoute };
}

const req = (body: L7Request['body'] = null): L7Request => ({ method: body ? 'POST' : 'GET', path: '/', authority: 'svc', scheme: 'http', headers: {}, body, version: 'http1' });
const answer = (status: number): L7Response => ({ status, headers: {}, body: Buffer.from('x') });

async function metric(registry: Registry, name: string): Promise<string> {
  return registry.getSingleMetricAsString(name);
}

describe('retries', () => {
  it('retry a 503 on another endpoint by default (Istio: 2 retries), with the attempt header', async () => {
    const s = setup();
    const seen: string[] = [];
    const attempts: string[] = [];
    const h = s.stack(async (r, rc) => {
      seen.push(rc.target!.ip);
      attempts.push(r.headers['x-envoy-attempt-count'] as string);
      return seen.length < 3 ? answer(503) : answer(200);
    });
    const a = await h(req(), s.ctx(req()));
    assert.equal(a.status, 200);
    assert.equal(new Set(seen).size, 3, `three different endpoints: ${seen}`);
    assert.deepEqual(attempts, ['1', '2', '3']);
    assert.match(await metric(s.registry, 'nodemesh_retries_total'), /cluster="c",reason="status-503"\} 2/);
  });

  it('does not retry a 500 by default, nor past the route attempts (URX), nor a body over 64 KiB', async () => {
    const s = setup();
    let n = 0;
    assert.equal((await s.stack(async () => (n++, answer(500)))(req(), s.ctx(req()))).status, 500);
    assert.equal(n, 1);
    const t = setup({}, { policy: { retry: { attempts: 1, on: [], codes: [500] } } });
    n = 0;
    const rc = t.ctx(req());
    assert.equal((await t.stack(async () => (n++, answer(500)))(req(), rc)).status, 500);
    assert.equal(n, 2);
    assert.ok(rc.flags.includes('URX'));
    const big = setup();
    n = 0;
    const r = req(Readable.from([Buffer.alloc(70 * 1024)]));
    const h = big.stack(async (x) => {
      n++;
      if (x.body && !Buffer.isBuffer(x.body)) await new Promise((res) => (x.body as Readable).resume().on('end', res));
      return answer(503);
    });
    assert.equal((await h(r, big.ctx(r))).status, 503);
    assert.equal(n, 1, 'a body over 64 KiB is never replayed');
  });

  it('replays a small streamed body byte for byte', async () => {
    const s = setup();
    const bodies: string[] = [];
    const r = req(Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    const h = s.stack(async (x) => {
      if (Buffer.isBuffer(x.body)) bodies.push(x.body.toString());
      else {
        const parts: Buffer[] = [];
        for await (const c of x.body as Readable) parts.push(c as Buffer);
        bodies.push(Buffer.concat(parts).toString());
      }
      return bodies.length === 1 ? answer(503) : answer(200);
    });
    assert.equal((await h(r, s.ctx(r))).status, 200);
    assert.deepEqual(bodies, ['hello world', 'hello world']);
  });

  it('retries on connect failure; the rate budget caps retries at ratio + floor for a sequential client', async () => {
    const s = setup({ retryBudgetRate: { ratio: 0.2, minPerSecond: 1, ttlMs: 10_000 } }, { policy: { retry: { attempts: 3, on: ['connect-failure'], codes: [500] } } });
    let upstreamCalls = 0;
    const h = s.stack(async (_r, rc) => {
      upstreamCalls++;
      return { ...localReply(rc, 503, 'refused', 'UF'), failure: 'connect' };
    });
    const requests = 200;
    for (let i = 0; i < requests; i++) {
      s.clock.advance(50); // 20 requests per second, for 10 s
      await h(req(), s.ctx(req()));
    }
    // allowed retries over the 10 s window: 1/s × 10 s + 20 % of requests; never 3 per request
    const perRequest = upstreamCalls / requests;
    assert.ok(perRequest <= 1.3, `attempts per request ${perRequest}`);
    assert.ok(perRequest > 1.1, `some retries were made: ${perRequest}`);
    assert.match(await metric(s.registry, 'nodemesh_retry_budget_exhausted_total'), /budget="rate"/);
  });
});

describe('circuit breaking', () => {
  it('answers UO past maxConnections + http1MaxPendingRequests, and counts it', async () => {
    const s = setup({ connectionPool: { maxConnections: 1, http1MaxPendingRequests: 1 } });
    const release: (() => void)[] = [];
    const h = s.stack((_r, _rc) => new Promise<L7Response>((res) => release.push(() => res(answer(200)))));
    const running = Array.from({ length: 5 }, () => h(req(), s.ctx(req())));
    await new Promise((r) => setImmediate(r));
    for (const f of release) f();
    const statuses = (await Promise.all(running)).map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 200, 503, 503, 503]);
    assert.match(await metric(s.registry, 'nodemesh_circuit_breaker_overflow_total'), /limit="max_pending_requests"\} 3/);
  });
});

describe('outlier detection', () => {
  it('ejects an endpoint after N consecutive 5xx, sends it nothing, keeps the pool, and lets it back after baseEjectionTime', async () => {
    const s = setup({ outlierDetection: { consecutive5xxErrors: 3, intervalMs: 1000, baseEjectionMs: 30_000, maxEjectionPercent: 10 } }, { policy: { retry: { attempts: 0, on: [], codes: [] } } });
    const bad = EPS[0]!.ip;
    const hits = new Map<string, number>();
    const h = s.stack(async (_r, rc) => {
      hits.set(rc.target!.ip, (hits.get(rc.target!.ip) ?? 0) + 1);
      return answer(rc.target!.ip === bad ? 500 : 200);
    });
    for (let i = 0; i < 30; i++) await h(req(), s.ctx(req()));
    assert.equal(hits.get(bad), 3, 'three errors, then no more requests');
    assert.match(await metric(s.registry, 'nodemesh_outlier_ejections_total'), /cluster="c"\} 1/);
    // 10 % of 3 endpoints is 0: Envoy still ejects one, never two.
    assert.ok(s.states.peek('c')!.endpoint(EPS[0]!).ejectedUntil > s.clock.now());
    s.clock.advance(31_000);
    hits.clear();
    for (let i = 0; i < 9; i++) await h(req(), s.ctx(req()));
    assert.ok((hits.get(bad) ?? 0) > 0, 'back after baseEjectionTime');
  });
});

describe('faults and mirrors', () => {
  it('aborts and delays their configured shares, flagged FI / DI', async () => {
    const registry = new Registry();
    const metrics = new ResilienceMetrics(registry);
    let x = 0;
    const seq = (): number => ((x = (x * 7919 + 17) % 1000), x / 1000);
    const layer = faultLayer({ metrics, random: seq })(async () => answer(200));
    const route: Route = { name: 'r', source: { kind: 'default', namespace: '', name: '' }, matches: [], action: { kind: 'respond', status: 200 }, policy: { fault: { abort: { httpStatus: 503, fraction: 0.3 }, delay: { ms: 1, fraction: 0.2 } } } };
    let aborted = 0;
    let delayed = 0;
    for (let i = 0; i < 1000; i++) {
      const rc = newRequestContext(conn, {});
      rc.route = route;
      const a = await layer(req(), rc);
      if (a.status === 503 && rc.flags.includes('FI')) aborted++;
      if (rc.flags.includes('DI')) delayed++;
    }
    assert.ok(Math.abs(aborted / 1000 - 0.3) <= 0.05, `aborted ${aborted}`);
    assert.ok(Math.abs(delayed / 1000 - 0.2) <= 0.05, `delayed ${delayed}`);
  });

  it('mirrors fire and forget: the primary never waits for the mirror, which is counted', async () => {
    const s = setup({}, { policy: { mirrors: [{ cluster: 'mirror', fraction: 1 }] } });
    let mirrorDone!: () => void;
    const mirrorSeen = new Promise<L7Request>((resolve) => {
      const send: Handler = (r) =>
        new Promise((res) => {
          resolve(r);
          mirrorDone = () => res(answer(200));
        });
      const h = mirrorLayer({ services: s.services, metrics: s.metrics, send, random: () => 0 })(async () => answer(201));
      void h(req(Buffer.from('payload')), s.ctx(req())).then((a) => assert.equal(a.status, 201));
    });
    const m = await mirrorSeen;
    assert.equal(m.authority, 'svc-shadow');
    assert.equal(Buffer.isBuffer(m.body) ? m.body.toString() : null, 'payload');
    mirrorDone();
    await new Promise((r) => setTimeout(r, 10));
    assert.match(await metric(s.registry, 'nodemesh_mirrored_requests_total'), /cluster="mirror",outcome="ok"\} 1/);
  });
});

describe('without a retry policy (no route)', () => {
  const failing = (failure: 'reset' | 'connect', calls: string[]): Handler => async (r, rc) => {
    calls.push(`${r.method} ${Buffer.isBuffer(r.body) ? r.body.toString() : r.body === null ? '-' : 'stream'}`);
    if (calls.length === 1) return { ...localReply(rc, 503, `upstream ${failure}`, failure === 'reset' ? 'UC' : 'UF'), failure };
    return answer(200);
  };
  const bare = (upstream: Handler): Handler => {
    const states = new ClusterStates();
    return compose([retryLayer({ states, metrics: new ResilienceMetrics(new Registry()), random: () => 0 })], upstream);
  };
  const noRoute = (r: L7Request): RequestContext => newRequestContext(conn, r.headers);

  it('repeats an idempotent request once after a reset before any answer (the keep-alive race with a closing server)', async () => {
    const calls: string[] = [];
    const r = req();
    const rc = noRoute(r);
    const a = await bare(failing('reset', calls))(r, rc);
    assert.equal(a.status, 200);
    assert.deepEqual(calls, ['GET -', 'GET -']);
    assert.deepEqual(rc.flags, [], 'the first attempt left no flag');
  });

  it('does not repeat a POST after a reset (it may have been processed), but does after a connect failure, body and all', async () => {
    const reset: string[] = [];
    const r1 = req(Readable.from([Buffer.from('pay'), Buffer.from('load')]));
    const a1 = await bare(failing('reset', reset))(r1, noRoute(r1));
    assert.equal(a1.status, 503);
    assert.equal(reset.length, 1);
    const connect: string[] = [];
    const r2 = req(Readable.from([Buffer.from('pay'), Buffer.from('load')]));
    const a2 = await bare(async (r, rc) => {
      if (connect.length === 0 && !Buffer.isBuffer(r.body) && r.body !== null) for await (const _ of r.body) void _;
      return failing('connect', connect)(r, rc);
    })(r2, noRoute(r2));
    assert.equal(a2.status, 200);
    assert.deepEqual(connect, ['POST stream', 'POST payload']);
  });
});
