// S6, "one bad instance" (issue 17): three endpoints of one Service, one answering 500 to 20 % of its
// requests, one 30 ms slower than the others. The lab's part (pods, Service, HTTPRoute with retries,
// DestinationRule with LEAST_REQUEST and outlier detection), the check that the agents got that policy,
// the endpoints' shares of the traffic, and the verdict: does the mesh give the client a higher success
// rate and a lower p99 than the client spreading requests over the endpoints itself?
'use strict';

const { aggregateHttp, median, r3 } = require('./stats');

const VIP = '198.18.128.51';
/** The three instances: name -> bench/server.js options. */
const ENDPOINTS = {
  good: [],
  flaky: ['--fail-percent', '20', '--fail-seed', '1'],
  slow: ['--delay-ms', '30'],
};
const CONTENDERS = ['direct', 'nodemesh-l7', 'haproxy-http-mtls'];
const RETRY = { codes: [500, 502, 503], attempts: 2 };
/** DestinationRule loadBalancer.simple values run.js's --s6-lb may pick, with the agent's name for each. */
const LB = { LEAST_REQUEST: 'least_request', ROUND_ROBIN: 'round_robin', RANDOM: 'random', PEAK_EWMA: 'peak_ewma' };
const OUTLIER = { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50 };

const PLAN = {
  quick: { rate: 400, conns: 30, dur: 5, warm: 1 },
  full: { rate: 400, conns: 30, dur: 15, warm: 2 },
};

/**
 * Pods and objects for S6: the three instances twice, enrolled (`s6-<name>`, behind the Service `s6`, for
 * nodemesh-l7) and not (`s6-<name>-plain`, for direct and HAProxy, as server-plain is for S1), all on node-b.
 * @param {(name: string, node: string, sa: string, enroll: boolean, containers: object[]) => string} pod run.js's pod document
 * @param {string[]} serverArgv the server command up to its options (taskset, node, bench/server.js)
 */
function manifest(pod, serverArgv, httpPort, lb = 'LEAST_REQUEST') {
  const docs = [];
  for (const [name, opts] of Object.entries(ENDPOINTS)) {
    const c = [{ name: 'http', argv: [...serverArgv, '--port', String(httpPort), ...opts] }];
    docs.push(pod(`s6-${name}`, 'node-b', 'bench-server', true, c).replace(`labels: { app: s6-${name} }`, `labels: { app: s6, instance: ${name} }`));
    docs.push(pod(`s6-${name}-plain`, 'node-b', 'bench-server', false, c));
  }
  const yamlList = (xs) => `[${xs.join(', ')}]`;
  docs.push(`---
apiVersion: v1
kind: Service
metadata: { name: s6, namespace: default }
spec:
  clusterIP: ${VIP}
  selector: { app: s6 }
  ports: [{ name: http, port: ${httpPort}, targetPort: ${httpPort}, appProtocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: s6, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: s6, port: ${httpPort} }]
  rules:
    - retry: { codes: ${yamlList(RETRY.codes)}, attempts: ${RETRY.attempts} }
      backendRefs: [{ name: s6, port: ${httpPort} }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: s6, namespace: default }
spec:
  host: s6.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: ${lb} }
    outlierDetection: { ${Object.entries(OUTLIER).map(([k, v]) => `${k}: ${v}`).join(', ')} }
`);
  return docs.join('\n');
}

/** What each contender is configured with, for the results. */
function describe(lb = 'LEAST_REQUEST') {
  return {
    endpoints: 'three bench servers on node-b: good; flaky (500 to 20 % of requests, seeded PRNG); slow (every response held 30 ms)',
    direct: 'client-plain round-robins requests over the three plain instances itself (request i to instance i mod 3), its connections split evenly',
    'nodemesh-l7': `Service s6 (appProtocol http, VIP ${VIP}); HTTPRoute retry ${JSON.stringify(RETRY)} (default backoff); DestinationRule loadBalancer ${lb}, outlierDetection ${JSON.stringify(OUTLIER)}; default retry budget`,
    'haproxy-http-mtls': 'mode http on both hops, mTLS between them; B: balance leastconn, retries 2, retry-on 500 502 503 conn-failure, option redispatch 1; no health checks',
  };
}

/**
 * Targets per contender. direct: the three plain instances as one loadgen target list.
 * @param {(name: string) => {ip: string}} podOf
 */
function targets(podOf, haproxyFront, haproxyPort, httpPort) {
  const names = Object.keys(ENDPOINTS);
  return {
    direct: { client: 'client-plain', target: names.map((n) => `${podOf(`s6-${n}-plain`).ip}:${httpPort}`).join(','), endpointByIp: Object.fromEntries(names.map((n) => [podOf(`s6-${n}-plain`).ip, n])) },
    'nodemesh-l7': { client: 'client-mesh', host: VIP, http: httpPort },
    'haproxy-http-mtls': { client: 'client-plain', host: haproxyFront, http: haproxyPort },
  };
}

/**
 * Why the agents' view of S6 is not what the manifest asks, or null when it is: node-a (the source agent)
 * must have the route's retry and the cluster's balancer and outlier detection.
 */
function configProblem(dump, lb = 'LEAST_REQUEST') {
  const table = (dump.routes || []).find((t) => t.name.startsWith('routes|s6.default'));
  const route = table && table.routes && table.routes[0];
  const retry = route && route.effective && route.effective.retry;
  if (!retry) return 'no route table for s6 with an effective retry policy';
  if (retry.retries !== RETRY.attempts || JSON.stringify(retry.codes) !== JSON.stringify(RETRY.codes)) return `route retry is ${JSON.stringify(retry)}`;
  const cluster = ((dump.services && dump.services.clusters) || []).find((c) => c.host.startsWith('s6.default'));
  if (!cluster) return 'no s6 cluster';
  if (!cluster.policy || !cluster.policy.outlierDetection) return `s6 cluster without outlier detection: ${JSON.stringify(cluster.policy || null)}`;
  if (cluster.endpoints && cluster.endpoints.length !== 3) return `s6 cluster has ${cluster.endpoints.length} endpoints, not 3`;
  const kind = (cluster.policy.lb && cluster.policy.lb.kind) || 'least_request';
  if (kind !== LB[lb]) return `s6 cluster balances ${kind}, not ${LB[lb]}`;
  return null;
}

/** Requests each enrolled instance received (node-b's destination-side request counter, retries included). */
function meshEndpointCounts(metricsText) {
  const out = Object.fromEntries(Object.keys(ENDPOINTS).map((n) => [n, 0]));
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('istio_requests_total{') || !line.includes('reporter="destination"')) continue;
    const m = /destination_workload="s6-(\w+)"/.exec(line);
    if (m && m[1] in out) out[m[1]] += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

/** Requests each plain instance answered, from HAProxy B's `show stat` CSV (its s6_out servers' hrsp_* sums). */
function haproxyEndpointCounts(csv) {
  const lines = csv.split('\n').filter(Boolean);
  const cols = lines[0].replace(/^# /, '').split(',');
  const at = (row, k) => Number(row[cols.indexOf(k)]) || 0;
  const out = Object.fromEntries(Object.keys(ENDPOINTS).map((n) => [n, 0]));
  for (const l of lines.slice(1)) {
    const row = l.split(',');
    if (row[0] === 's6_out' && row[1] in out) out[row[1]] = ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'].reduce((s, k) => s + at(row, k), 0);
  }
  return out;
}

/** loadgen's per_target answers ("IP:PORT" -> {answered}) by instance name. */
function byInstance(perTarget, endpointByIp) {
  return Object.fromEntries(Object.entries(perTarget).map(([t, v]) => [endpointByIp[t.split(':')[0]] || t, v.answered]));
}

const diff = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] || 0)]));

/** Each instance's share of what the instances received in one rep. */
function shares(counts) {
  if (!counts) return null;
  const total = Object.values(counts).reduce((s, x) => s + x, 0);
  return total ? Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, r3(v / total)])) : null;
}

/** The published S6 record of one contender: aggregateHttp's fields plus the client's success and the shares. */
function aggregate(reps, baseReps) {
  const out = aggregateHttp(reps, baseReps);
  const m = median(reps.map((r) => r.load.success_rate));
  out.success_rate = m === null ? null : Math.round(m * 1e5) / 1e5;
  const sr = reps.map((r) => r.load.success_rate).filter((x) => typeof x === 'number');
  out.spread.success_rate = sr.length ? [Math.min(...sr), Math.max(...sr)] : null;
  out.non_2xx = reps.reduce((s, r) => s + r.load.non_2xx, 0);
  out.status_counts = reps.reduce((acc, r) => {
    for (const [k, v] of Object.entries(r.load.status_counts || {})) acc[k] = (acc[k] || 0) + v;
    return acc;
  }, {});
  out.p99_all_answers_ms = r3(median(reps.map((r) => r.load.latency_all_ms.p99)));
  out.endpoint_requests = reps.map((r) => r.endpoint_requests || null);
  const per = reps.map((r) => shares(r.endpoint_requests)).filter(Boolean);
  out.endpoint_share = per.length ? Object.fromEntries(Object.keys(ENDPOINTS).map((n) => [n, r3(median(per.map((s) => s[n])))])) : null;
  return out;
}

/**
 * The promise the issue asks to check, per proxy contender, from the medians: a higher success rate than
 * direct and a lower p99 (over successful requests, the latency a user waits for an answer it can use).
 */
function verdict(results) {
  const d = results.direct && results.direct.S6;
  if (!d) return null;
  const out = {};
  for (const c of CONTENDERS.slice(1)) {
    const s = results[c] && results[c].S6;
    if (!s) continue;
    const higherSuccess = s.success_rate !== null && d.success_rate !== null && s.success_rate > d.success_rate;
    const lowerP99 = s.p99_ms !== null && d.p99_ms !== null && s.p99_ms < d.p99_ms;
    out[c] = { success_rate: s.success_rate, direct_success_rate: d.success_rate, higher_success: higherSuccess, p99_ms: s.p99_ms, direct_p99_ms: d.p99_ms, lower_p99: lowerP99, holds: higherSuccess && lowerP99 };
  }
  return out;
}

/**
 * Smoke first (every contender answers, mostly 2xx), then the reps, contenders interleaved in `order(i)`;
 * each rep records the instances' request counts where they can be read.
 * @param {{reps: number, plan: object, order: (i: number) => string[], httpRun: (c: string, s: object) => Promise<object>,
 *   smoke: (c: string) => Promise<object>, counts: Record<string, () => Promise<Record<string, number>>>, endpointByIp: Record<string, string>, log: (m: string) => void, fmt: (c: string, r: object) => string}} o
 */
async function run(o) {
  for (const c of o.order(0)) {
    const r = await o.smoke(c);
    if (r.connect_errors > 0 || !(r.success_rate >= 0.5)) throw new Error(`S6 ${c}: smoke run answered ${JSON.stringify(r.status_counts)} of ${r.scheduled} (${r.connect_errors} connect errors)`);
  }
  const reps = Object.fromEntries(o.order(0).map((c) => [c, []]));
  for (let i = 0; i < o.reps; i++) {
    for (const c of o.order(i)) {
      const count = o.counts[c];
      const before = count ? await count() : null;
      const r = await o.httpRun(c, o.plan);
      r.endpoint_requests = before ? diff(before, await count()) : r.load.per_target ? byInstance(r.load.per_target, o.endpointByIp) : null;
      reps[c][i] = r;
      const share = shares(r.endpoint_requests);
      o.log(`S6 rep ${i + 1}/${o.reps} ${o.fmt(c, r)}, success ${r.load.success_rate}${share ? `, shares ${JSON.stringify(share)}` : ''}`);
    }
  }
  const agg = {};
  for (const c of Object.keys(reps)) agg[c] = aggregate(reps[c], c === 'direct' ? null : reps.direct);
  return { agg, raw: reps };
}

module.exports = { VIP, ENDPOINTS, CONTENDERS, LB, PLAN, manifest, describe, targets, configProblem, meshEndpointCounts, haproxyEndpointCounts, diff, aggregate, verdict, run };
