// Routes over xDS: control-plane tables -> Envoy resources -> the agent's state, unchanged; what the agent refuses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../../src/controlplane/model';
import type { ServiceObject } from '../../src/controlplane/objects';
import type { RouteObject } from '../../src/controlplane/routes/route-objects';
import { buildRouteModel } from '../../src/controlplane/routes/route-tables';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { decodeResource, type AgentResource } from '../../src/xds/agent-resources';
import { toAny } from '../../src/xds/protos';
import { CDS, LDS, LISTENER_TYPE, RDS, ROUTE_TYPE } from '../../src/xds/resource-types';
import type { RouteTable } from '../../src/state/routes';

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: mesh }
spec:
  clusterIP: 198.18.200.1
  selector: { app: echo }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: web, port: 8000, targetPort: 8000 }
    - { name: grpc, port: 7070, targetPort: 7070 }
    - { name: tcp-db, port: 5432 }
---
apiVersion: v1
kind: Service
metadata: { name: echo-v2, namespace: mesh }
spec: { clusterIP: 198.18.200.2, selector: { app: echo-v2 }, ports: [{ name: http, port: 80, appProtocol: kubernetes.io/h2c }] }
`;

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: everything, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }, { group: "", kind: Service, name: echo, port: 8000 }]
  rules:
    - name: split
      matches:
        - path: { type: PathPrefix, value: /api }
          method: POST
          headers: [{ name: x-canary, value: "true" }, { type: RegularExpression, name: x-v, value: "v[0-9]+" }]
          queryParams: [{ name: debug, value: "1" }, { type: RegularExpression, name: q, value: "a|b" }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-set, value: a }], add: [{ name: x-add, value: b }], remove: [x-drop] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-resp, value: r }] }
        - type: URLRewrite
          urlRewrite: { hostname: internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }
      backendRefs:
        - { name: echo, port: 80, weight: 9 }
        - name: echo-v2
          port: 80
          weight: 1
          filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: x-backend, value: v2 }] } }]
        - { name: gone, port: 80, weight: 0 }
      timeouts: { request: 5s, backendRequest: 250ms }
    - matches: [{ path: { type: PathPrefix, value: /strip } }]
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - matches: [{ path: { type: Exact, value: /full } }]
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /replaced } } }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - matches: [{ path: { type: RegularExpression, value: "/re/[a-z]+" } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, port: 8443, statusCode: 301, path: { type: ReplaceFullPath, replaceFullPath: /moved } } }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 307, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } } }]
    - matches: [{ path: { type: PathPrefix, value: /gone } }]
      filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 308, path: { type: ReplacePrefixMatch, replacePrefixMatch: "" } } }]
    - matches: [{ path: { type: PathPrefix, value: /dead } }]
      backendRefs: [{ name: gone, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mine, namespace: client }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: mesh, port: 8000 }]
  rules: [{ backendRefs: [{ name: echo-v2, namespace: mesh, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: weighted, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 7070 }]
  rules:
    - matches: [{ method: { service: echo.Echo, method: Ping }, headers: [{ name: x-tenant, value: a }] }]
      backendRefs: [{ name: echo, port: 7070, weight: 3 }, { name: echo, port: 80, weight: 1 }]
    - backendRefs: [{ name: missing, port: 7070 }, { name: echo, port: 7070 }]
`;

function setup() {
  const services = parseYamlSource('s', '/s.yaml', SERVICES).documents.map((d) => (d.status === 'ok' ? (d.stored.object as ServiceObject) : assert.fail(JSON.stringify(d))));
  const routes = parseYamlSource('r', '/r.yaml', ROUTES).documents.map((d) => (d.status === 'ok' ? { object: d.stored.object as RouteObject, origin: d.stored.origin } : assert.fail(JSON.stringify(d))));
  const model = buildModel(services, [], new VipAllocator());
  model.routes = buildRouteModel(model.services, routes);
  return { model, snap: translate(model, { detectTimeoutMs: 250 }) };
}

function decoded(snap: ReturnType<typeof setup>['snap'], type: string, name: string): AgentResource {
  const r = snap.shared.get(type as typeof LDS)!.get(name);
  assert.ok(r, `${name} is served`);
  return decodeResource(type, r.any).resource;
}

test('every route table the control plane serves decodes on the agent into exactly the same table', () => {
  const { model, snap } = setup();
  const tables: RouteTable[] = [...model.routes!.ports.values()].flatMap((p) => [p.table, ...p.consumers.values()]);
  assert.equal(tables.length, 5); // echo 80, 8000, 8000 for client, 7070; echo-v2 80; 5432 is tcp
  for (const t of tables) assert.deepEqual(decoded(snap, RDS, t.name), { kind: 'routes', table: t }, t.name);
  // What the tables hold, as the agent sees them.
  const http = (decoded(snap, RDS, 'routes|echo.mesh.svc.cluster.local:80') as { table: RouteTable }).table;
  const split = http.routes.find((r) => r.source.rule === 'split')!;
  // backendRequest without retry: the default retries, written out with the per-try timeout.
  assert.deepEqual(split.policy, { timeoutMs: 5000, perTryTimeoutMs: 250, retry: { attempts: 2, on: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], codes: [503] } });
  assert.deepEqual(split.action.kind === 'forward' && split.action.backends.map((b) => [b.cluster, b.weight, b.invalid]), [
    ['outbound|80||echo.mesh.svc.cluster.local', 9, undefined],
    ['outbound|80||echo-v2.mesh.svc.cluster.local', 1, undefined],
    ['invalid|Service mesh/gone not found', 0, 'Service mesh/gone not found'],
  ]);
  const grpc = (decoded(snap, RDS, 'routes|echo.mesh.svc.cluster.local:7070') as { table: RouteTable }).table;
  assert.deepEqual(grpc.routes[0]!.matches[0], { path: { kind: 'exact', value: '/echo.Echo/Ping' }, headers: [{ name: 'x-tenant', kind: 'exact', value: 'a' }], query: [] });
});

test('VIP listeners decode into the port protocol, cluster, route tables and detection bound', () => {
  const { snap } = setup();
  const vip = (port: number, ip = '198.18.200.1') => decoded(snap, LDS, `vip|${ip}:${port}`);
  assert.deepEqual(vip(80), {
    kind: 'vip',
    vip: { vip: '198.18.200.1', port: 80, cluster: 'outbound|80||echo.mesh.svc.cluster.local', protocol: 'http', routeTable: 'routes|echo.mesh.svc.cluster.local:80' },
  });
  assert.deepEqual(vip(8000), {
    kind: 'vip',
    vip: {
      vip: '198.18.200.1',
      port: 8000,
      cluster: 'outbound|8000||echo.mesh.svc.cluster.local',
      protocol: 'detect',
      detectTimeoutMs: 250,
      routeTable: 'routes|echo.mesh.svc.cluster.local:8000',
      consumerRouteTables: { client: 'routes|echo.mesh.svc.cluster.local:8000|consumer=client' },
    },
  });
  assert.deepEqual(vip(7070), {
    kind: 'vip',
    vip: { vip: '198.18.200.1', port: 7070, cluster: 'outbound|7070||echo.mesh.svc.cluster.local', protocol: 'grpc', routeTable: 'routes|echo.mesh.svc.cluster.local:7070' },
  });
  assert.deepEqual(vip(5432), { kind: 'vip', vip: { vip: '198.18.200.1', port: 5432, cluster: 'outbound|5432||echo.mesh.svc.cluster.local', protocol: 'tcp' } });
  assert.equal((vip(80, '198.18.200.2') as { vip: { protocol: string } }).vip.protocol, 'http2');
  // Clusters carry the port's protocol too (a pod IP destination takes its Service's).
  const cluster = (name: string) => (decoded(snap, CDS, name) as { cluster: { protocol: string } }).cluster.protocol;
  assert.deepEqual(
    ['outbound|80||echo.mesh.svc.cluster.local', 'outbound|8000||echo.mesh.svc.cluster.local', 'outbound|7070||echo.mesh.svc.cluster.local', 'outbound|5432||echo.mesh.svc.cluster.local', 'outbound|80||echo-v2.mesh.svc.cluster.local'].map(cluster),
    ['http', 'detect', 'grpc', 'tcp', 'http2'],
  );
});

test('proxyless clients get a RouteConfiguration grpc-js-xds accepts: weights where safe, the default route otherwise', () => {
  const { snap } = setup();
  const raw = (name: string) => snap.shared.get(RDS)!.get(name)!.message as { virtual_hosts: { domains: string[]; routes: Record<string, unknown>[] }[] };
  const grpc = raw('echo.mesh.svc.cluster.local:7070');
  // The GRPCRoute's second rule names a missing Service: not safe, so the whole table falls back.
  assert.deepEqual(grpc.virtual_hosts[0]!.routes.map((r) => r.name), ['default']);
  assert.ok(grpc.virtual_hosts[0]!.domains.includes('echo.mesh.svc.cluster.local:7070'));
  const http = raw('echo-v2.mesh.svc.cluster.local:80');
  assert.deepEqual(http.virtual_hosts[0]!.routes.map((r) => Object.keys(r).filter((k) => ['route', 'redirect', 'direct_response'].includes(k))), [['route']]);
});

function nack(type: string, typeName: string, message: Record<string, unknown>): string {
  try {
    decodeResource(type, toAny(typeName, message));
  } catch (e) {
    return (e as Error).message;
  }
  return assert.fail('accepted');
}

test('the agent NACKs, with the reason, what it cannot honour', () => {
  const rc = (routes: Record<string, unknown>[], vh: Record<string, unknown> = {}) =>
    nack(RDS, ROUTE_TYPE, { name: 'rt', virtual_hosts: [{ name: 'vh', domains: ['*'], routes, ...vh }] });
  const fwd = { cluster: 'c' };
  const cases: [string, RegExp][] = [
    [nack(RDS, ROUTE_TYPE, { name: 'rt', virtual_hosts: [{ name: 'vh', domains: ['echo'], routes: [] }] }), /exactly one virtual host with domains \["\*"\].*never by Host/],
    [rc([{ name: 'r', match: { safe_regex: { regex: '/a(?=b)' } }, route: fwd }]), /route r: safe_regex "\/a\(\?=b\)": lookahead and lookbehind are not supported/],
    [rc([{ name: 'r', match: { safe_regex: { regex: '(?i)abc' } }, route: fwd }]), /route r: safe_regex "\(\?i\)abc": not a valid regular expression/],
    [rc([{ name: 'r', match: { prefix: '/', headers: [{ name: 'x', string_match: { exact: 'a', ignore_case: true } }] }, route: fwd }]), /header x: ignore_case string matches are not supported/],
    [rc([{ name: 'r', match: { prefix: '/', headers: [{ name: ':authority', string_match: { exact: 'a' } }] }, route: fwd }]), /pseudo-header matches other than :method/],
    [rc([{ name: 'r', match: { prefix: '/', grpc: {} }, route: fwd }]), /route r: grpc is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster_header: 'x-cluster' } }]), /route action cluster_header is not supported \(cluster, weighted_clusters\)/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster: 'c', hash_policy: [{ filter_state: { key: 'x' } }] } }]), /hash_policy\[0\]: hash policy filter_state is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: '5xx,retriable-4xx', num_retries: { value: 2 } } } }]), /retry_policy: retry_on retriable-4xx is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retriable_headers: [{ name: 'x', present_match: true }] } } }]), /retry_policy: retriable_headers is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster: 'c', request_mirror_policies: [{ cluster: 'm', runtime_fraction: { runtime_key: 'k' } }] } }]), /request_mirror_policies\[0\]: runtime_fraction.runtime_key is not supported/],
    [
      rc([{ name: 'r', match: { prefix: '/' }, route: fwd, typed_per_filter_config: { 'envoy.filters.http.fault': toAny('envoy.extensions.filters.http.fault.v3.HTTPFault', { abort: { header_abort: {} } }) } }]),
      /abort must set http_status or grpc_status \(header_abort is not supported\)/,
    ],
    [
      rc([{ name: 'r', match: { prefix: '/' }, redirect: { response_code: 'FOUND' }, typed_per_filter_config: { 'envoy.filters.http.fault': toAny('envoy.extensions.filters.http.fault.v3.HTTPFault', {}) } }]),
      /typed_per_filter_config is supported on routes that forward/,
    ],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 0 } }] } } }]), /weights sum to 0/],
    [rc([{ name: 'r', match: { path: '/x' }, route: { cluster: 'c', prefix_rewrite: '/y' } }]), /prefix_rewrite needs the route to match a path prefix/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: { cluster: 'c', regex_rewrite: { pattern: { regex: 'a' }, substitution: 'b' } } }]), /regex_rewrite is supported as a full path replacement/],
    [rc([{ name: 'r', match: { prefix: '/' }, redirect: { response_code: 'FOUND', strip_query: true } }]), /strip_query is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, direct_response: { status: 200, body: { filename: '/etc/passwd' } } }]), /body must be inline_string/],
    [rc([{ name: 'r', match: { prefix: '/' }, non_forwarding_action: {} }]), /action non_forwarding_action is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: fwd, typed_per_filter_config: { x: { type_url: 'type.googleapis.com/google.protobuf.Empty', value: Buffer.alloc(0) } } }]), /typed_per_filter_config x is not supported \(only envoy.filters.http.fault/],
    [rc([], { retry_policy: { num_retries: { value: 1 } } }), /virtual host vh: retry_policy is not supported/],
    [rc([{ name: 'r', match: { prefix: '/' }, route: fwd, request_headers_to_add: [{ header: { key: 'host', value: 'x' } }] }]), /may not set "host"/],
  ];
  for (const [got, want] of cases) assert.match(got, want);

  const listener = (l: Record<string, unknown>) => nack(LDS, LISTENER_TYPE, { name: 'vip|1.2.3.4:80', address: { socket_address: { address: '1.2.3.4', port_value: 80 } }, ...l });
  const hcm = (extra: Record<string, unknown>) => ({
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: toAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', { stat_prefix: 'x', ...extra }),
  });
  const router = { name: 'envoy.filters.http.router', typed_config: toAny('envoy.extensions.filters.http.router.v3.Router', {}) };
  const rds = { rds: { route_config_name: 'rt', config_source: { ads: {} } } };
  const meta = { metadata: { filter_metadata: { nodemesh: { fields: { cluster: { stringValue: 'c' } } } } } };
  for (const [got, want] of [
    [listener({ filter_chains: [{ filters: [hcm({ route_config: { name: 'inline' }, http_filters: [router] })] }], ...meta }), /needs rds with a route_config_name \(inline route_config/],
    [listener({ filter_chains: [{ filters: [hcm({ ...rds, http_filters: [] })] }], ...meta }), /http_filters must be the router, after an optional fault filter/],
    [
      listener({
        filter_chains: [
          {
            filters: [
              hcm({
                ...rds,
                http_filters: [{ name: 'envoy.filters.http.fault', typed_config: toAny('envoy.extensions.filters.http.fault.v3.HTTPFault', { abort: { http_status: 503, percentage: { numerator: 1 } } }) }, router],
              }),
            ],
          },
        ],
        ...meta,
      }),
      /the fault filter may not inject faults for the whole listener/,
    ],
    [
      listener({
        filter_chains: [{ filters: [hcm({ ...rds, http_filters: [{ name: 'envoy.filters.http.rbac', typed_config: toAny('envoy.extensions.filters.http.rbac.v3.RBAC', {}) }, router] })] }],
        ...meta,
      }),
      /not supported: envoy\.filters\.http\.rbac/,
    ],
    [listener({ filter_chains: [{ filters: [hcm({ ...rds, http_filters: [router] })] }] }), /needs metadata nodemesh\.cluster/],
    [
      listener({
        listener_filters: [{ name: 'envoy.filters.listener.http_inspector', typed_config: toAny('envoy.extensions.filters.listener.http_inspector.v3.HttpInspector', {}) }],
        listener_filters_timeout: { nanos: 100e6 },
        filter_chains: [],
      }),
      /continue_on_listener_filters_timeout must be true/,
    ],
  ] as [string, RegExp][]) {
    assert.match(got, want);
  }
});
