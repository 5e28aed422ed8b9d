// Resilience in the L7 path, in the lab: a client on node-a calls Services whose endpoints run on node-b
// (HBONE, mTLS), and its agent enforces what HTTPRoute, FaultInjection and DestinationRule ask for:
// timeouts, retries and their budget, the circuit breaker, outlier detection, fault injection, mirroring,
// and bad input refused with file:line:field while the last good config keeps serving.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { meshConfigFile } from '../../src/lab/controlplane';
import { admin, down, execInPod, isRoot, metricSum, podYaml, setPodLabel, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const FLAKY_HTTP = path.resolve(__dirname, '../helpers/flaky-http.js');
const WEB = '198.18.128.50';
const POOL = '198.18.128.52';
const OD = '198.18.128.53';

const pod = (name: string, node: string, app: string, command: string[]): string => podYaml({ name, node, serviceAccount: app, app, command });
const sample = (name: string): string[] => ['nodemesh', 'sample', 'http', '--port', '8080', '--name', name];
const svc = (name: string, vip: string | null, app = name): string => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ${vip ? `clusterIP: ${vip}, ` : ''}selector: { app: ${app} }, ports: [{ name: http, port: 80, targetPort: 8080, appProtocol: http }] }
---`;

function manifest(flag: string): string {
  return [
    pod('client', 'node-a', 'client', ['sleep', 'infinity']),
    pod('web-1', 'node-b', 'web', sample('web')),
    pod('web-2', 'node-b', 'web', sample('web')),
    pod('solo-1', 'node-b', 'solo', sample('solo')),
    pod('mirror-1', 'node-b', 'mirror', sample('mirror')),
    pod('mirror-2', 'node-b', 'mirror2', sample('mirror2')),
    pod('pool-1', 'node-b', 'pool', sample('pool')),
    pod('od-1', 'node-b', 'od', sample('od')),
    pod('od-2', 'node-b', 'od', sample('od')),
    pod('od-3', 'node-b', 'od', [process.execPath, FLAKY_HTTP, '8080', flag]),
    // Joins the od Service mid-test: a push that replaces the endpoint list.
    pod('od-4', 'node-b', 'od-spare', sample('od')),
    svc('web', WEB),
    svc('solo', null),
    svc('mirror', null),
    svc('mirror2', null),
    svc('pool', POOL),
    svc('od', OD),
    `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web-routes, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /timeout-request } }]
      timeouts: { request: 500ms }
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /timeout-backend } }]
      timeouts: { backendRequest: 500ms }
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /retry } }]
      retry: { attempts: 2, codes: [500], backoff: 10ms }
      backendRefs: [{ name: solo, port: 80 }]
    # Gateway API conformance HTTPRouteRetryWithTimeouts and HTTPRouteRetryConnectionError, rebuilt.
    - matches: [{ path: { type: PathPrefix, value: /retry/backend-request-timeout-200ms } }]
      retry: { attempts: 2 }
      timeouts: { backendRequest: 200ms }
      backendRefs: [{ name: solo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /retry/request-timeout-400ms } }]
      retry: { codes: [500], attempts: 5 }
      timeouts: { backendRequest: 200ms, request: 400ms }
      backendRefs: [{ name: solo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /retry/no-status-code-attempts-3 } }]
      retry: { attempts: 2 }
      backendRefs: [{ name: solo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /budget } }]
      retry: { attempts: 3, codes: [500], backoff: 1ms }
      backendRefs: [{ name: solo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /fault } }]
      filters: [{ type: ExtensionRef, extensionRef: { group: nodemesh.io, kind: FaultInjection, name: chaos } }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /mirror-all } }]
      filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 } } }]
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /mirror-two } }]
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror2, port: 80 } } }
      backendRefs: [{ name: web, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /mirror-quarter } }]
      filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 }, percent: 25 } }]
      backendRefs: [{ name: web, port: 80 }]
---
apiVersion: nodemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: chaos, namespace: default }
spec:
  delay: { fixed: 200ms, percentage: 20 }
  abort: { httpStatus: 418, percentage: 30 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pool, namespace: default }
spec:
  host: pool.default.svc.cluster.local
  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: od, namespace: default }
spec:
  host: od
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 8s, maxEjectionPercent: 34 }
`,
  ].join('\n');
}

interface Summary {
  total: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  byPod: Record<string, number>;
  seconds: number;
  rps: number;
}

/** Requests whose response_flags (a comma-separated list) include `flag`, among the lines matching `match`. */
function flagged(text: string, name: string, flag: string, match: Record<string, string>): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (!Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const flags = /response_flags="([^"]*)"/.exec(line)?.[1] ?? '-';
    if (flags.split(',').includes(flag)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

describe('L7 resilience across nodes', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('rs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-res-'));
  const flag = path.join(dir, 'od-3-failing');
  let state: LabState;

  before(async () => {
    fs.writeFileSync(flag, '');
    state = await upFromYaml(lab, manifest(flag));
    // The agents have the Services once the lab is up; the route table and policies may come a moment later.
    await waitFor('node-a to have web-routes and the DestinationRules', async () => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { routes: { name: string; routes: unknown[] }[]; services: { clusters: { host: string; policy?: { outlierDetection?: unknown } }[] } };
      const web = dump.routes.find((t) => t.name.startsWith('routes|web.default'));
      const od = dump.services.clusters.find((c) => c.host.startsWith('od.default'));
      return web?.routes.length === 11 && od?.policy?.outlierDetection !== undefined;
    }, 10_000);
    // The client's first request to each backend pod waits for its HBONE connection (0.5-3 s on the loaded
    // test machine): warm them up, so per-try timeouts and gRPC deadlines below measure the policy alone.
    for (const p of ['/mirror-two', '/retry/no-status-code-attempts-3']) {
      await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${WEB}${p}`, '--count', '8', '--concurrency', '4', '--http2']);
    }
  });
  after(async () => {
    await down(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function client(url: string, args: string[] = []): Promise<Summary> {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, '--summary', '-q', ...args]);
    assert.equal(r.code === 0 || r.code === 1, true, r.stdout + r.stderr);
    const last = r.stdout.trim().split('\n').pop()!;
    return (JSON.parse(last) as { summary: Summary }).summary;
  }

  it('timeouts: request (retries included) and backendRequest (one attempt) answer 504 UT; fast requests pass', async () => {
    for (const p of ['timeout-request', 'timeout-backend']) {
      const slow = await client(`http://${WEB}/${p}?delay=1500`, ['--count', '3']);
      assert.deepEqual(slow.byStatus, { '504': 3 }, `${p}: ${JSON.stringify(slow)}`);
      const fast = await client(`http://${WEB}/${p}?delay=10`, ['--count', '3']);
      assert.deepEqual(fast.byStatus, { '200': 3 }, `${p}: ${JSON.stringify(fast)}`);
    }
    const m = await admin(lab, 'node-a', '/metrics');
    assert.ok(flagged(m, 'istio_requests_total', 'UT', { reporter: 'source', response_code: '504' }) >= 6, 'the 504s carry response_flags UT');
    // /config_dump: each route's effective policy, defaults filled in.
    type Effective = { timeoutMs: number | null; retry: { retries: number; on: string[]; codes: number[]; perTryTimeoutMs: number | null } };
    const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { routes: { name: string; routes: { matches: { path?: { value: string } }[]; effective: Effective }[] }[] };
    const table = dump.routes.find((t) => t.name.startsWith('routes|web.default'))!;
    const at = (p: string): Effective => table.routes.find((r) => r.matches[0]?.path?.value === p)!.effective;
    assert.equal(at('/timeout-request').timeoutMs, 500);
    assert.deepEqual(at('/timeout-request').retry, { retries: 2, on: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], codes: [503], backoffBaseMs: 25, backoffMaxMs: 250, perTryTimeoutMs: null });
    assert.equal(at('/timeout-backend').retry.perTryTimeoutMs, 500);
    assert.deepEqual([at('/retry').retry.retries, at('/retry').retry.codes], [2, [500]]);
  });

  it('gRPC deadlines: the upstream is told the smaller of grpc-timeout and the route timeout; an exhausted one is DEADLINE_EXCEEDED', async () => {
    const grpc = ['--http2', '-H', 'content-type: application/grpc'];
    const line = async (url: string, timeout: string): Promise<{ status: number; body?: { headers: Record<string, string> }; trailers?: Record<string, string> }> => {
      const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, ...grpc, '-H', `grpc-timeout: ${timeout}`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return JSON.parse(r.stdout.trim().split('\n')[0]!) as { status: number };
    };
    // No route timeout on /timeout-backend: the client's 3 s go upstream; /timeout-request's 500 ms is smaller.
    const full = await line(`http://${WEB}/timeout-backend?delay=1`, '3S');
    assert.equal(full.body?.headers['grpc-timeout'], '3000m', JSON.stringify(full));
    const capped = await line(`http://${WEB}/timeout-request?delay=1`, '3S');
    assert.equal(capped.body?.headers['grpc-timeout'], '500m', JSON.stringify(capped));
    const late = await line(`http://${WEB}/timeout-backend?delay=1500`, '200m');
    console.log(`gRPC deadline: ${JSON.stringify(late)}`);
    // Trailers-only: the grpc-status is in the answer's head, which the agent counted; no message came.
    assert.equal(late.status, 200);
    assert.equal(late.body, undefined, JSON.stringify(late));
    const m = await admin(lab, 'node-a', '/metrics');
    assert.equal(flagged(m, 'istio_requests_total', 'UT', { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '4' }), 1);
  });

  it('retries: attempts and codes as the route says, each attempt counted; x-envoy-attempt-count goes upstream', async () => {
    const key = (k: string): string[] => ['-H', `x-fail-key: ${lab}-${k}`];
    // 2 retries: two failures are absorbed.
    assert.deepEqual((await client(`http://${WEB}/retry?fail=2`, key('a'))).byStatus, { '200': 1 });
    // Three failures are not: 500 after 3 attempts; the 4th request with that key is the backend's 4th hit.
    assert.deepEqual((await client(`http://${WEB}/retry?fail=3`, key('b'))).byStatus, { '500': 1 });
    assert.deepEqual((await client(`http://${WEB}/retry?fail=3`, ['--count', '1', ...key('b')])).byStatus, { '200': 1 });
    // A status the route does not list is not retried.
    assert.deepEqual((await client(`http://${WEB}/retry?fail=1&fail_status=502`, key('c'))).byStatus, { '502': 1 });
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${WEB}/retry?fail=1`, '-H', `x-fail-key: ${lab}-d`]);
    const body = (JSON.parse(r.stdout.trim().split('\n')[0]!) as { body: { headers: Record<string, string> } }).body;
    assert.equal(body.headers['x-envoy-attempt-count'], '2', JSON.stringify(body));
    const m = await admin(lab, 'node-a', '/metrics');
    // 2 (a) + 2 (b) + 0 (c: 502 is not listed) + 1 (d).
    assert.equal(metricSum(m, 'nodemesh_retries_total', { reason: 'status-500' }), 5, m.split('\n').filter((l) => l.startsWith('nodemesh_retries')).join('\n'));
  });

  it('retries with timeouts and on connection errors (Gateway API conformance cases)', async () => {
    const cases: [string, string, number[]][] = [
      // HTTPRouteRetryWithTimeouts: attempts 2, backendRequest 200 ms; failures that take 300 ms time out.
      ['/retry/backend-request-timeout-200ms', 'fail=2&fail_delay=300', [200]],
      ['/retry/backend-request-timeout-200ms', 'fail=3&fail_delay=300', [504]],
      // codes [500], attempts 5, backendRequest 200 ms, request 400 ms: the whole exchange bounds the retries.
      ['/retry/request-timeout-400ms', 'fail=1', [200]],
      ['/retry/request-timeout-400ms', 'fail=4&fail_delay=100', [504]],
      // HTTPRouteRetryConnectionError: attempts 2, no codes; the backend resets the connection.
      ['/retry/no-status-code-attempts-3', 'fail=2&fail_reset=1', [200]],
      ['/retry/no-status-code-attempts-3', 'fail=4&fail_reset=1', [500, 503]],
    ];
    for (const [i, [p, q, want]] of cases.entries()) {
      const s = await client(`http://${WEB}${p}?${q}`, ['-H', `x-fail-key: ${lab}-conf-${i}`]);
      const got = Number(Object.keys(s.byStatus)[0]);
      assert.ok(s.total === 1 && want.includes(got), `${p}?${q}: want ${want.join(' or ')}, got ${JSON.stringify(s.byStatus)}`);
    }
  });

  it('retry budget: a backend failing every request, 3 retries asked, 20 s: upstream attempts stay within 1.3 per request', async () => {
    const count = async (): Promise<number> => metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_workload: 'solo-1' });
    const before = await count();
    const s = await client(`http://${WEB}/budget?status=500`, ['--duration', '20', '--concurrency', '8']);
    await new Promise((r) => setTimeout(r, 300));
    const attempts = (await count()) - before;
    const perRequest = attempts / s.total;
    console.log(`retry budget: ${s.total} requests in ${s.seconds} s (${Math.round(s.rps)} rps), ${attempts} upstream attempts, ${perRequest.toFixed(3)} per request`);
    assert.equal(s.byStatus['500'], s.total, JSON.stringify(s));
    assert.ok(s.total >= 1000, `enough requests for the 10 s floor (100 retries) to be a small share: ${s.total}`);
    assert.ok(perRequest <= 1.3, `attempts per request ${perRequest}`);
    assert.ok(perRequest > 1.05, `retries happened within the budget: ${perRequest}`);
    const m = await admin(lab, 'node-a', '/metrics');
    assert.ok(metricSum(m, 'nodemesh_retry_budget_exhausted_total', { budget: 'rate' }) > 0, 'budget exhaustion is counted');
  });

  it('circuit breaker: maxConnections 1, http1MaxPendingRequests 1, 20 concurrent slow requests: 2 answered, 18 refused 503 UO', async () => {
    const s = await client(`http://${POOL}/?delay=2000`, ['--count', '20', '--concurrency', '20']);
    console.log(`circuit breaker: ${JSON.stringify(s.byStatus)}`);
    assert.deepEqual(s.byStatus, { '200': 2, '503': 18 }, JSON.stringify(s));
    const m = await admin(lab, 'node-a', '/metrics');
    assert.equal(flagged(m, 'istio_requests_total', 'UO', { reporter: 'source', destination_service: 'pool.default.svc.cluster.local' }), 18);
    assert.equal(metricSum(m, 'nodemesh_circuit_breaker_overflow_total', { limit: 'max_pending_requests' }), 18);
  });

  it('outlier detection: the endpoint answering 500 is ejected after 3 errors and stays so through an endpoint push, clients see >= 99 % success, it returns once healthy', async () => {
    const first = await client(`http://${OD}/`, ['--count', '30']);
    // Sequential requests: every one that reaches od-3 fails, so the third is its last before the ejection.
    assert.equal(first.byStatus['500'], 3, JSON.stringify(first));
    const ejected = async (): Promise<{ endpoint: string; state: string; ejections: number }[]> => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { l7Clusters: { cluster: string; endpoints: { endpoint: string; state: string; ejections: number }[] }[] };
      return dump.l7Clusters.find((c) => c.cluster.includes('||od.default'))?.endpoints.filter((e) => e.state === 'ejected') ?? [];
    };
    const od3 = state.pods.find((p) => p.name === 'od-3')!.ip;
    const out = await ejected();
    assert.deepEqual(
      out.map((e) => [e.endpoint.split(':')[0], e.ejections]),
      [[od3, 1]],
      'config_dump shows od-3 ejected once',
    );
    // A push that replaces the Service's endpoint list (od-4 joins) keeps the state of the endpoints that stay.
    setPodLabel(lab, 'od-4', 'app', 'od');
    await waitFor('node-a to see od-4 in the od Service', async () => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { services: { clusters: { host: string; endpoints: unknown[] }[] } };
      return dump.services.clusters.find((c) => c.host.startsWith('od.default'))?.endpoints.length === 4;
    }, 5000);
    assert.deepEqual(
      (await ejected()).map((e) => [e.endpoint.split(':')[0], e.ejections]),
      [[od3, 1]],
      'od-3 still ejected after the push',
    );
    const during = await client(`http://${OD}/`, ['--count', '200', '--concurrency', '4']);
    assert.ok((during.byPod['od-4'] ?? 0) > 0, 'the newcomer takes requests');
    console.log(`outlier detection: first 30 ${JSON.stringify(first.byStatus)}, next 200 ${JSON.stringify(during.byStatus)} ${JSON.stringify(during.byPod)}`);
    assert.ok(during.ok / during.total >= 0.99, JSON.stringify(during));
    const m = await admin(lab, 'node-a', '/metrics');
    assert.ok(metricSum(m, 'nodemesh_outlier_ejections_total') >= 1);
    fs.rmSync(flag);
    await waitFor('od-3 to serve again after its ejection', async () => ((await client(`http://${OD}/`, ['--count', '12'])).byPod['od-3'] ?? 0) > 0, 20_000);
  });

  it('fault injection: a 30 % abort and a 20 % delay fall within 5 points over 1000 requests', async () => {
    const s = await client(`http://${WEB}/fault`, ['--count', '1000', '--concurrency', '20']);
    const m = await admin(lab, 'node-a', '/metrics');
    const all = (flag: string): number => flagged(m, 'istio_requests_total', flag, { reporter: 'source', destination_service: 'web.default.svc.cluster.local' });
    const aborts = s.byStatus['418'] ?? 0;
    const delays = all('DI');
    console.log(`fault injection: ${JSON.stringify(s.byStatus)}, delayed ${delays} (FI ${all('FI')})`);
    assert.equal(s.total, 1000);
    assert.equal(aborts + (s.byStatus['200'] ?? 0), 1000, JSON.stringify(s.byStatus));
    assert.equal(all('FI'), aborts, 'every 418 carries FI');
    assert.ok(Math.abs(aborts / 1000 - 0.3) <= 0.05, `abort share ${aborts / 1000}`);
    assert.ok(Math.abs(delays / 1000 - 0.2) <= 0.05, `delay share ${delays / 1000}`);
  });

  it('mirroring: every request, to two mirrors, or a quarter of them; the client sees only the primary answers', async () => {
    const mirrored = async (): Promise<number> => metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_workload: 'mirror-1' });
    const m0 = await mirrored();
    const all = await client(`http://${WEB}/mirror-all`, ['--count', '100', '--concurrency', '4']);
    assert.deepEqual(all.byStatus, { '200': 100 });
    assert.equal(all.byPod['mirror-1'], undefined, 'the client never sees the mirror');
    await waitFor('100 copies at the mirror', async () => (await mirrored()) - m0 === 100, 5000);
    // HTTPRouteRequestMultipleMirrors: each mirror gets its copy.
    const atTwo = async (): Promise<number> => metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_workload: 'mirror-2' });
    const [a0, b0] = [await mirrored(), await atTwo()];
    assert.deepEqual((await client(`http://${WEB}/mirror-two`, ['--count', '50', '--concurrency', '4'])).byStatus, { '200': 50 });
    await waitFor('50 copies at each mirror', async () => (await mirrored()) - a0 === 50 && (await atTwo()) - b0 === 50, 5000);
    const m1 = await mirrored();
    const quarter = await client(`http://${WEB}/mirror-quarter`, ['--count', '400', '--concurrency', '8']);
    assert.deepEqual(quarter.byStatus, { '200': 400 });
    await new Promise((r) => setTimeout(r, 500));
    const copies = (await mirrored()) - m1;
    console.log(`mirroring: 100/100 copied; 25 %: ${copies}/400`);
    assert.ok(Math.abs(copies / 400 - 0.25) <= 0.08, `mirrored ${copies} of 400`);
  });

  it('bad input: attempts -1, percent 150, a baseEjectionTime that is no duration: file:line:field; the last good config serves; a DestinationRule for no Service is reported', async () => {
    const cfgDir = path.dirname(meshConfigFile(lab));
    const bad = path.join(cfgDir, 'bad-resilience.yaml');
    fs.writeFileSync(
      bad,
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web-routes, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /timeout-request } }]
      retry: { attempts: -1 }
      filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 }, percent: 150 } }]
      backendRefs: [{ name: web, port: 80 }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: od, namespace: default }
spec:
  host: od
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: soon }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: typo, namespace: default }
spec: { host: webb, trafficPolicy: { loadBalancer: { simple: RANDOM } } }
`,
    );
    try {
      const log = state.controlPlane!.log;
      await waitFor('the control plane to report the bad file', async () => fs.readFileSync(log, 'utf8').includes(`${bad}:8`), 5000);
      await waitFor('all three issues reported', async () => {
        const text = fs.readFileSync(log, 'utf8');
        return text.includes(`${bad}:9`) && text.includes(`${bad}:18`);
      }, 3000);
      const text = fs.readFileSync(log, 'utf8');
      assert.match(text, /spec\.rules\[0\]\.retry\.attempts/);
      assert.match(text, /spec\.rules\[0\]\.filters\[0\]\.requestMirror\.percent/);
      assert.match(text, /spec\.trafficPolicy\.outlierDetection\.baseEjectionTime/);
      // A valid DestinationRule whose host matches no Service is reported, not dropped silently.
      await waitFor('the unmatched DestinationRule reported', async () => /DestinationRule applies to nothing: no Service has the host \\"webb\\"/.test(fs.readFileSync(log, 'utf8')), 3000);
      await new Promise((r) => setTimeout(r, 300));
      // The last good web-routes: /timeout-request still times out, and nothing is mirrored from it.
      assert.deepEqual((await client(`http://${WEB}/timeout-request?delay=1500`, ['--count', '1'])).byStatus, { '504': 1 });
    } finally {
      fs.rmSync(bad, { force: true });
    }
  });
});
