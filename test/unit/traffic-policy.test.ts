// Resilience configuration end to end, without a network: HTTPRoute retry / RequestMirror / ExtensionRef,
// FaultInjection and DestinationRule validation (file:line:field), which DestinationRule applies to which
// Service (and reporting the ones that apply to nothing), and the Envoy resources they become, decoded by the
// agent into exactly the policy the control plane meant.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../../src/controlplane/errors';
import { buildModel } from '../../src/controlplane/model';
import type { ServiceObject } from '../../src/controlplane/objects';
import type { RouteObject } from '../../src/controlplane/routes/route-objects';
import { buildRouteModel } from '../../src/controlplane/routes/route-tables';
import type { DestinationRuleObject, FaultInjectionObject } from '../../src/controlplane/traffic/traffic-objects';
import { buildTrafficModel, type StoredDestinationRule } from '../../src/controlplane/traffic/traffic-model';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { decodeResource } from '../../src/xds/agent-resources';
import { toAny } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE, RDS } from '../../src/xds/resource-types';
import type { RouteTable } from '../../src/state/routes';
import type { ClusterInfo } from '../../src/state/services';

const FILE = '/cfg/traffic.yaml';

function parse(text: string): { objects: unknown[]; issues: string[]; stored: { object: unknown; origin: { source: string; file: string; line: number } }[] } {
  const u = parseYamlSource('t', FILE, text);
  const objects: unknown[] = [];
  const issues: string[] = [];
  const stored: { object: unknown; origin: { source: string; file: string; line: number } }[] = [];
  for (const d of u.documents) {
    if (d.status === 'ok') {
      objects.push(d.stored.object);
      stored.push(d.stored);
    } else if (d.status === 'invalid') issues.push(...d.issues.map(formatIssue));
  }
  return { objects, issues, stored };
}

function expectIssues(issues: string[], expected: [string, string, string][]): void {
  for (const [line, field, message] of expected) {
    assert.ok(
      issues.some((i) => i.startsWith(`${FILE}:${line}: `) && i.includes(`field ${field}: `) && i.includes(message)),
      `missing ${line} ${field}: ${message}\n${issues.join('\n')}`,
    );
  }
  assert.equal(issues.length, expected.length, issues.join('\n'));
}

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: shop }
spec:
  clusterIP: 198.18.210.1
  selector: { app: echo }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: grpc, port: 7070 }
---
apiVersion: v1
kind: Service
metadata:
  name: mirror
  namespace: shop
  annotations: { nodemesh.io/retry-budget-ratio: "0.1", nodemesh.io/retry-budget-ttl: 5s }
spec: { clusterIP: 198.18.210.2, selector: { app: mirror }, ports: [{ name: http, port: 80 }] }
`;

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: resilient, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { value: /retry } }]
      retry: { codes: [500, 502], attempts: 3, backoff: 100ms }
      timeouts: { request: 2s, backendRequest: 500ms }
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 }, percent: 20 } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: echo, port: 80 }, fraction: { numerator: 25, denominator: 50 } } }
        - { type: ExtensionRef, extensionRef: { group: nodemesh.io, kind: FaultInjection, name: flaky } }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { value: /reset } }]
      retry: { attempts: 3 }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { value: /missing-fault } }]
      filters: [{ type: ExtensionRef, extensionRef: { group: nodemesh.io, kind: FaultInjection, name: nope } }]
      backendRefs: [{ name: echo, port: 80 }]
`;

const FAULT = `apiVersion: nodemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: flaky, namespace: shop }
spec:
  delay: { fixed: 1.5s, percentage: 20 }
  abort: { httpStatus: 503, percentage: 30.5 }
`;

const RULES = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo, namespace: shop }
spec:
  host: echo
  trafficPolicy:
    loadBalancer: { simple: PEAK_EWMA, localityLbSetting: { enabled: true } }
    connectionPool:
      tcp: { maxConnections: 1, connectTimeout: 2s }
      http: { http1MaxPendingRequests: 1, http2MaxRequests: 0, maxRequestsPerConnection: 10, maxRetries: 5, idleTimeout: 30s }
    outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50, minHealthPercent: 30 }
    retryBudget: { percent: 25, minRetryConcurrency: 4 }
    portLevelSettings:
      - port: { number: 7070 }
        loadBalancer: { consistentHash: { httpHeaderName: X-User, maglev: { tableSize: 251 } } }
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: mirror-hash, namespace: other }
spec:
  host: "*.shop.svc.cluster.local"
  trafficPolicy:
    loadBalancer: { consistentHash: { httpCookie: { name: session, ttl: 60s, path: / }, ringHash: { minimumRingSize: 2048 } } }
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: typo, namespace: shop }
spec:
  host: ecko
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
`;

test('HTTPRoute retry, RequestMirror (repeated, percent or fraction) and the FaultInjection ExtensionRef parse into the rule', () => {
  const r = parse(ROUTE);
  assert.deepEqual(r.issues, []);
  const rule = (r.objects[0] as RouteObject).rules[0]!;
  assert.deepEqual(rule.retry, { codes: [500, 502], attempts: 3, backoffMs: 100 });
  assert.deepEqual(rule.timeouts, { requestMs: 2000, backendRequestMs: 500 });
  assert.deepEqual(
    rule.mirrors?.map((m) => [m.backend.name, m.backend.namespace, m.fraction]),
    [
      ['mirror', 'shop', 0.2],
      ['echo', 'shop', 0.5],
    ],
  );
  assert.deepEqual(rule.fault, { namespace: 'shop', name: 'flaky' });
  const f = parse(FAULT);
  assert.deepEqual(f.issues, []);
  assert.deepEqual((f.objects[0] as FaultInjectionObject).fault, { delay: { ms: 1500, fraction: 0.2 }, abort: { httpStatus: 503, fraction: 0.305 } });
});

test('bad retries, mirrors, faults and destination rules: file:line:field, the object rejected', () => {
  const route = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: bad, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - retry: { attempts: -1, codes: [200, 503, 503], backoff: soon }
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: m, port: 80 }, percent: 150 } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: m, port: 80 }, fraction: { numerator: 3, denominator: 2 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: m, port: 80 }, percent: 1, fraction: { numerator: 1 } } }
        - { type: ExtensionRef, extensionRef: { group: example.com, kind: Thing, name: x } }
      backendRefs:
        - name: echo
          port: 80
          filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: m, port: 80 } } }]
`);
  assert.equal(route.objects.length, 0);
  expectIssues(route.issues, [
    ['7', 'spec.rules[0].retry.attempts', 'must be an integer 1-100, got number -1'],
    ['7', 'spec.rules[0].retry.codes[0]', 'must be an integer 400-599, got number 200'],
    ['7', 'spec.rules[0].retry.codes[2]', '503 is listed twice'],
    ['7', 'spec.rules[0].retry.backoff', '"soon" is not a Gateway API duration'],
    ['9', 'spec.rules[0].filters[0].requestMirror.percent', 'must be an integer 0-100, got number 150'],
    ['10', 'spec.rules[0].filters[1].requestMirror.fraction.numerator', '3 is more than the denominator 2'],
    ['11', 'spec.rules[0].filters[2].requestMirror.fraction', 'only one of percent or fraction may be specified'],
    ['12', 'spec.rules[0].filters[3].extensionRef.kind', "nodemesh's extension filter is group nodemesh.io, kind FaultInjection"],
    ['16', 'spec.rules[0].backendRefs[0].filters[0].type', 'RequestMirror is not supported on a backendRef (set it on the rule)'],
  ]);
  const fault = parse(`apiVersion: nodemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: f }
spec:
  delay: { percentage: 20 }
  abort: { httpStatus: 42, grpcStatus: 14, percentage: 101 }
  slow: true
`);
  expectIssues(fault.issues, [
    ['5', 'spec.delay.fixed', 'is required (a duration'],
    ['6', 'spec.abort.httpStatus', 'must be an integer 200-599, got number 42'],
    ['6', 'spec.abort', 'must set exactly one of httpStatus (200-599) and grpcStatus (0-16)'],
    ['6', 'spec.abort.percentage', 'must be a number 0-100'],
    ['7', 'spec.slow', 'unknown field'],
  ]);
  const dr = parse(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: d, namespace: shop }
spec:
  host: echo
  exportTo: [.]
  trafficPolicy:
    loadBalancer: { simple: PASSTHROUGH, localityLbSetting: { failover: [{ from: a, to: b }] } }
    connectionPool: { tcp: { maxConnections: -1, tcpKeepalive: { time: 1s } }, http: { useClientProtocol: true } }
    outlierDetection: { baseEjectionTime: 30 seconds, interval: 0s, maxEjectionPercent: 120 }
    tls: { mode: SIMPLE }
`);
  expectIssues(dr.issues, [
    ['6', 'spec.exportTo[0]', 'only "*" is supported'],
    ['8', 'spec.trafficPolicy.loadBalancer.simple', 'PASSTHROUGH is not supported'],
    ['8', 'spec.trafficPolicy.loadBalancer.localityLbSetting.failover', "is not supported: nodemesh prefers the client's node, then its zone"],
    ['9', 'spec.trafficPolicy.connectionPool.tcp.tcpKeepalive', 'is not supported'],
    ['9', 'spec.trafficPolicy.connectionPool.tcp.maxConnections', 'must be an integer 0-2147483647, got number -1'],
    ['9', 'spec.trafficPolicy.connectionPool.http.useClientProtocol', 'is not supported'],
    ['10', 'spec.trafficPolicy.outlierDetection.baseEjectionTime', '"30 seconds" is not a duration'],
    ['10', 'spec.trafficPolicy.outlierDetection.interval', '"0s" must be at least 1 ms'],
    ['10', 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', 'must be an integer 0-100, got number 120'],
    ['11', 'spec.trafficPolicy.tls', 'only mode ISTIO_MUTUAL is supported'],
  ]);
  const svc = parse(`apiVersion: v1
kind: Service
metadata: { name: s, annotations: { nodemesh.io/retry-budget-ratio: lots, nodemesh.io/retry-budget-ttl: 2m } }
spec: { ports: [{ port: 80 }] }
`);
  expectIssues(svc.issues, [
    ['3', 'metadata.annotations.nodemesh.io/retry-budget-ratio', '"lots" must be a number 0-1000'],
    ['3', 'metadata.annotations.nodemesh.io/retry-budget-ttl', '"2m" must be at most 60s'],
  ]);
});

function setup() {
  const services = parse(SERVICES).objects as ServiceObject[];
  const rules = parse(RULES).stored as StoredDestinationRule[];
  const routes = parse(ROUTE).stored as { object: RouteObject; origin: { source: string; file: string; line: number } }[];
  const fault = parse(FAULT).objects[0] as FaultInjectionObject;
  const model = buildModel(services, [], new VipAllocator());
  model.traffic = buildTrafficModel(model.services, rules);
  model.routes = buildRouteModel(model.services, routes, new Map(), { faults: new Map([['shop/flaky', fault.fault]]), hashOf: (c) => model.traffic!.clusters.get(c)?.hash });
  return { model, snap: translate(model) };
}

const ECHO_80 = 'outbound|80||echo.shop.svc.cluster.local';
const ECHO_7070 = 'outbound|7070||echo.shop.svc.cluster.local';
const MIRROR_80 = 'outbound|80||mirror.shop.svc.cluster.local';

test('which DestinationRule applies where: the most specific host, port-level groups, and the ones that apply to nothing', () => {
  const { model } = setup();
  const t = model.traffic!;
  assert.equal(t.clusters.get(ECHO_80)!.source, 'DestinationRule/shop/echo');
  assert.equal(t.clusters.get(ECHO_7070)!.policy!.lb!.kind, 'maglev', 'the port-level loadBalancer replaces the rule-level one');
  assert.ok(t.clusters.get(ECHO_7070)!.policy!.connectionPool, 'groups the port does not set come from the rule');
  assert.equal(t.clusters.get(MIRROR_80)!.source, 'DestinationRule/other/mirror-hash', 'a wildcard host from another namespace');
  const status = Object.fromEntries(t.destinationRules.map((s) => [s.name, s]));
  assert.deepEqual(status.echo!.appliesTo, ['shop/echo:80', 'shop/echo:7070']);
  assert.match(status.echo!.notes.join(), /subsets v1 have no effect/);
  assert.match(status['mirror-hash']!.notes.join(), /Service shop\/echo: DestinationRule\/shop\/echo applies there/);
  assert.equal(status.typo!.unmatched, 'no Service has the host "ecko" (read as ecko.shop.svc.cluster.local)');
  assert.deepEqual(status.typo!.origin, { file: FILE, line: 26 });
});

test('clusters carry the policy as standard Envoy fields and the agent decodes exactly it', () => {
  const { snap } = setup();
  const cluster = (name: string): ClusterInfo => (decodeResource(CDS, snap.shared.get(CDS)!.get(name)!.any).resource as { cluster: ClusterInfo }).cluster;
  const echo = cluster(ECHO_80);
  assert.equal(echo.connectTimeoutMs, 2000);
  assert.deepEqual(echo.policy, {
    lb: { kind: 'peak_ewma' },
    locality: { enabled: true },
    connectionPool: { maxConnections: 1, http1MaxPendingRequests: 1, maxRetries: 5, idleTimeoutMs: 30_000, maxRequestsPerConnection: 10 },
    outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, intervalMs: 1000, baseEjectionMs: 2000, maxEjectionPercent: 50, minHealthPercent: 30 },
    retryBudgetConcurrency: { percent: 25, minRetryConcurrency: 4 },
  });
  assert.deepEqual(cluster(ECHO_7070).policy!.lb, { kind: 'maglev', tableSize: 251 });
  assert.deepEqual(cluster(MIRROR_80).policy, { lb: { kind: 'ring_hash', minRingSize: 2048 }, retryBudgetRate: { ratio: 0.1, minPerSecond: 10, ttlMs: 5000 } });
  // No DestinationRule: Istio's default LEAST_REQUEST, written out, and no limits.
  const raw = snap.shared.get(CDS)!.get(MIRROR_80)!.message as { lb_policy: string; load_balancing_policy: { policies: { typed_extension_config: { name: string } }[] } };
  assert.equal(raw.lb_policy, 'RING_HASH');
  const { snap: plain } = (() => {
    const model = buildModel(parse(SERVICES).objects as ServiceObject[], [], new VipAllocator());
    return { snap: translate(model) };
  })();
  const d = plain.shared.get(CDS)!.get(ECHO_80)!;
  assert.deepEqual((decodeResource(CDS, d.any).resource as { cluster: ClusterInfo }).cluster.policy, { lb: { kind: 'least_request' } });
  const m = d.message as { lb_policy: string; load_balancing_policy: { policies: { typed_extension_config: { name: string } }[] } };
  assert.equal(m.lb_policy, 'ROUND_ROBIN');
  assert.deepEqual(
    m.load_balancing_policy.policies.map((p) => p.typed_extension_config.name),
    ['envoy.load_balancing_policies.least_request', 'envoy.load_balancing_policies.round_robin'],
  );
});

test('routes carry retries, mirrors, the fault and the hash key as standard Envoy fields and the agent decodes exactly them', () => {
  const { model, snap } = setup();
  const table = model.routes!.ports.get(ECHO_80)!.table;
  const decoded = (decodeResource(RDS, snap.shared.get(RDS)!.get(table.name)!.any).resource as { table: RouteTable }).table;
  assert.deepEqual(decoded, table);
  const [retry, reset, missing] = ['rule-0', 'rule-1', 'rule-2'].map((id) => decoded.routes.find((r) => r.source.rule === id));
  assert.deepEqual(retry!.policy, {
    timeoutMs: 2000,
    perTryTimeoutMs: 500,
    retry: { attempts: 3, on: ['connect-failure', 'refused-stream', 'reset', 'retriable-status-codes'], codes: [500, 502], backoffBaseMs: 100 },
    mirrors: [
      { cluster: MIRROR_80, fraction: 0.2 },
      { cluster: ECHO_80, fraction: 0.5 },
    ],
    fault: { delay: { ms: 1500, fraction: 0.2 }, abort: { httpStatus: 503, fraction: 0.305 } },
  });
  assert.deepEqual(reset!.policy, { retry: { attempts: 3, on: ['connect-failure', 'refused-stream', 'reset'], codes: [] } });
  // Gateway API: an ExtensionRef that cannot be resolved is not skipped; its requests get an error.
  assert.deepEqual(missing!.action, { kind: 'respond', status: 500, body: 'FaultInjection shop/nope not found' });
  const status = model.routes!.status.find((s) => s.name === 'resilient')!;
  assert.match(status.parents[0]!.conditions[1]!.message, /FaultInjection shop\/nope not found \(the rule answers 500\)/);
  // The wire: what an Envoy would read.
  const raw = (snap.shared.get(RDS)!.get(table.name)!.message as { virtual_hosts: { routes: Record<string, unknown>[] }[] }).virtual_hosts[0]!.routes.find((r) => r.name === retry!.name)!;
  const action = raw.route as Record<string, unknown>;
  assert.deepEqual(action.retry_policy, {
    retry_on: 'connect-failure,refused-stream,reset,retriable-status-codes',
    num_retries: { value: 3 },
    retriable_status_codes: [500, 502],
    retry_back_off: { base_interval: { seconds: 0, nanos: 100e6 } },
    per_try_timeout: { seconds: 0, nanos: 500e6 },
  });
  assert.deepEqual(action.request_mirror_policies, [
    { cluster: MIRROR_80, runtime_fraction: { default_value: { numerator: 20, denominator: 'HUNDRED' } } },
    { cluster: ECHO_80, runtime_fraction: { default_value: { numerator: 50, denominator: 'HUNDRED' } } },
  ]);
  assert.deepEqual(Object.keys(raw.typed_per_filter_config as object), ['envoy.filters.http.fault']);
  // The consistent-hash key of the destination's DestinationRule goes on the routes to it.
  const mirrorTable = model.routes!.ports.get(MIRROR_80)!.table;
  assert.deepEqual(mirrorTable.routes[0]!.policy, { hash: [{ kind: 'cookie', name: 'session', ttlMs: 60_000, path: '/' }] });
  const grpcTable = model.routes!.ports.get(ECHO_7070)!.table;
  assert.deepEqual(grpcTable.routes[0]!.policy, { hash: [{ kind: 'header', name: 'x-user' }] });
  assert.deepEqual((decodeResource(RDS, snap.shared.get(RDS)!.get(grpcTable.name)!.any).resource as { table: RouteTable }).table, grpcTable);
  // Proxyless clients get the default route (no policy they would half-apply).
  const proxyless = snap.shared.get(RDS)!.get('echo.shop.svc.cluster.local:80')!.message as { virtual_hosts: { routes: { name: string }[] }[] };
  assert.deepEqual(proxyless.virtual_hosts[0]!.routes.map((r) => r.name), ['default']);
});

test('DestinationRule objects keep what was written for /debug/config', () => {
  const dr = parse(RULES).objects[0] as DestinationRuleObject;
  assert.equal(dr.host, 'echo');
  assert.deepEqual(dr.subsets, ['v1']);
  assert.deepEqual(dr.portLevel.map((p) => p.port), [7070]);
});

test('the agent NACKs, with the reason, cluster policy its layers cannot honour', () => {
  const base = { name: 'outbound|80||echo.shop.svc.cluster.local', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } };
  const nack = (extra: Record<string, unknown>): string => {
    try {
      decodeResource(CDS, toAny(CLUSTER_TYPE, { ...base, ...extra }));
    } catch (e) {
      return (e as Error).message;
    }
    return assert.fail(`accepted ${JSON.stringify(extra)}`);
  };
  const lbp = (type: string, cfg: Record<string, unknown> = {}) => ({
    load_balancing_policy: { policies: [{ typed_extension_config: { name: 'p', typed_config: toAny(type, cfg) } }] },
  });
  const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  const cases: [string, RegExp][] = [
    [nack({ lb_policy: 'CLUSTER_PROVIDED' }), /lb_policy CLUSTER_PROVIDED is not supported \(ROUND_ROBIN, LEAST_REQUEST/],
    [nack({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: { value: 3 } } }), /choice_count 3 is not supported \(the agent picks the better of 2\)/],
    [nack(lbp('envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest', { choice_count: { value: 5 } })), /choice_count 5 is not supported/],
    [nack(lbp('google.protobuf.Empty')), /load_balancing_policy lists no policy the agent knows/],
    [nack({ circuit_breakers: { per_host_thresholds: [{ max_connections: { value: 1 } }] } }), /per_host_thresholds is not supported \(limits are per cluster\)/],
    [nack({ circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: { value: 1 } }] } }), /only DEFAULT priority thresholds/],
    [nack({ outlier_detection: { consecutive_5xx: { value: 3 } } }), /success-rate ejection is not supported \(set enforcing_success_rate to 0\)/],
    [nack({ outlier_detection: { enforcing_success_rate: { value: 0 }, enforcing_consecutive_5xx: { value: 50 } } }), /enforcing_consecutive_5xx 50 is not supported \(0 or 100/],
    [nack({ outlier_detection: { enforcing_success_rate: { value: 0 }, failure_percentage_threshold: { value: 10 } } }), /failure_percentage_threshold is not supported/],
    [nack({ common_lb_config: { locality_weighted_lb_config: {} } }), /locality_weighted_lb_config is not supported \(the agent prefers its own node, then zone/],
    [nack({ health_checks: [{ timeout: { seconds: 1 } }] }), /health_checks is not supported \(the agent does no active health checking/],
    [nack({ metadata: { filter_metadata: { nodemesh: { fields: { retryBudget: { stringValue: 'lots' } } } } } }), /metadata nodemesh.retryBudget must be/],
    [nack({ typed_extension_protocol_options: { [HPO]: toAny(HPO, { common_http_protocol_options: { idle_timeout: { seconds: 0 } } }) } }), /idle_timeout 0 \(no idle timeout\) is not supported/],
  ];
  for (const [got, want] of cases) assert.match(got, want);
});
