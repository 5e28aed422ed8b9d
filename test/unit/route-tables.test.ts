// GAMMA tables: Gateway API precedence, producer / consumer / default tables, proxyless safety, route status.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../../src/controlplane/model';
import type { ServiceObject } from '../../src/controlplane/objects';
import type { RouteObject } from '../../src/controlplane/routes/route-objects';
import { buildRouteModel, type StoredRoute } from '../../src/controlplane/routes/route-tables';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';

function routes(text: string): StoredRoute[] {
  return parseYamlSource('t', '/cfg/r.yaml', text).documents.map((d) => {
    if (d.status !== 'ok') throw new Error(JSON.stringify(d));
    return { object: d.stored.object as RouteObject, origin: d.stored.origin };
  });
}

function svc(name: string, namespace = 'mesh', ports: ServiceObject['ports'] = [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }], clusterIP?: string): ServiceObject {
  return { kind: 'Service', meta: { name, namespace, uid: name, labels: {}, annotations: {} }, selector: { app: name }, ports, clusterIP };
}

const SERVICES = buildModel(
  [
    svc('echo', 'mesh', [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'tcp-db', port: 5432, protocol: 'TCP', targetPort: 5432 },
      { name: 'grpc', port: 7070, protocol: 'TCP', targetPort: 7070 },
    ]),
    svc('echo-v1'),
    svc('echo-v2'),
    svc('headless', 'mesh', undefined, 'None'),
  ],
  [],
  new VipAllocator(),
).services;

const ROUTE = (name: string, body: string, extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: mesh${extra} }
spec:
${body}
---
`;

test('precedence: exact, then regex, then longest prefix; method, headers, query; then age, name, rule order', () => {
  const m = buildRouteModel(
    SERVICES,
    routes(
      ROUTE(
        'b-young',
        `  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { value: / } }]
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { value: /api } }, { path: { value: /api }, method: GET }]
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { value: /api }, headers: [{ name: a, value: "1" }] }, { path: { value: /api }, queryParams: [{ name: q, value: "1" }] }]
      backendRefs: [{ name: echo-v1, port: 80 }]`,
      ) +
        ROUTE(
          'z-old',
          `  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { value: /api } }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - matches: [{ path: { type: RegularExpression, value: "/r.*" } }, { path: { type: Exact, value: /api } }]
      backendRefs: [{ name: echo-v2, port: 80 }]`,
          ', creationTimestamp: "2020-01-01T00:00:00Z"',
        ) +
        ROUTE(
          'a-young',
          `  parentRefs: [{ group: "", kind: Service, name: echo }]
  rules:
    - matches: [{ path: { value: /api/v1 } }]
      backendRefs: [{ name: echo-v2, port: 80 }]`,
        ),
    ),
  );
  const table = m.ports.get('outbound|80||echo.mesh.svc.cluster.local')!.table;
  assert.equal(table.name, 'routes|echo.mesh.svc.cluster.local:80');
  assert.deepEqual(
    table.routes.map((r) => `${r.name} ${r.matches[0]!.path!.kind}:${r.matches[0]!.path!.value}${r.matches[0]!.method ? ' ' + r.matches[0]!.method : ''}`),
    [
      'mesh/z-old/rule-1 exact:/api',
      'mesh/z-old/rule-1 regex:/r.*',
      'mesh/a-young/rule-0 prefix:/api/v1',
      'mesh/b-young/rule-1 prefix:/api GET',
      'mesh/b-young/rule-2 prefix:/api', // one header
      'mesh/b-young/rule-2 prefix:/api', // one query param
      'mesh/z-old/rule-0 prefix:/api', // older than b-young
      'mesh/b-young/rule-1 prefix:/api',
      'mesh/b-young/rule-0 prefix:/',
    ],
  );
  assert.equal(table.routes[4]!.matches[0]!.headers.length, 1);
  assert.equal(table.routes[5]!.matches[0]!.query.length, 1);
  // The 5432 port is tcp: no table; the grpc port has only a-young (no port in its parentRef).
  assert.equal(m.ports.has('outbound|5432||echo.mesh.svc.cluster.local'), false);
  assert.deepEqual(m.ports.get('outbound|7070||echo.mesh.svc.cluster.local')!.table.routes.map((r) => r.name), ['mesh/a-young/rule-0']);
  // A query match is something gRPC clients skip instead of honouring: proxyless clients get the default route.
  assert.deepEqual(m.ports.get('outbound|80||echo.mesh.svc.cluster.local')!.proxyless.routes.map((r) => r.name), ['default']);
  // On 7070 every route forwards plainly: proxyless clients see the same routes (under the API name).
  const grpc = m.ports.get('outbound|7070||echo.mesh.svc.cluster.local')!;
  assert.deepEqual([grpc.proxyless.name, grpc.proxyless.routes], ['echo.mesh.svc.cluster.local:7070', grpc.table.routes]);
});

test('actions: weights (0 kept), unusable backends keep their share, all-unusable and no-backend rules answer themselves', () => {
  const m = buildRouteModel(
    SERVICES,
    routes(
      ROUTE(
        'r',
        `  parentRefs: [{ group: "", kind: Service, name: echo-v1 }]
  rules:
    - matches: [{ path: { value: /split } }]
      backendRefs: [{ name: echo-v1, port: 80, weight: 70 }, { name: echo-v2, port: 80, weight: 30 }, { name: echo, port: 80, weight: 0 }]
    - matches: [{ path: { value: /half } }]
      backendRefs: [{ name: echo-v1, port: 80 }, { name: missing, port: 80 }, { name: echo-v2, port: 81 }, { group: example.com, kind: Thing, name: x }]
    - matches: [{ path: { value: /none } }]
      backendRefs: [{ name: missing, port: 80 }]
    - matches: [{ path: { value: /zero } }]
      backendRefs: [{ name: echo-v1, port: 80, weight: 0 }]
    - matches: [{ path: { value: /empty } }]
    - matches: [{ path: { value: /single } }]
      backendRefs: [{ name: echo-v2, port: 80, weight: 5 }]`,
      ),
    ),
  );
  const table = m.ports.get('outbound|80||echo-v1.mesh.svc.cluster.local')!.table;
  const by = (p: string) => table.routes.find((r) => r.matches[0]!.path!.value === p)!.action;
  assert.deepEqual(by('/split'), {
    kind: 'forward',
    backends: [
      { cluster: 'outbound|80||echo-v1.mesh.svc.cluster.local', weight: 70 },
      { cluster: 'outbound|80||echo-v2.mesh.svc.cluster.local', weight: 30 },
      { cluster: 'outbound|80||echo.mesh.svc.cluster.local', weight: 0 },
    ],
  });
  assert.deepEqual(by('/half'), {
    kind: 'forward',
    backends: [
      { cluster: 'outbound|80||echo-v1.mesh.svc.cluster.local', weight: 1 },
      { cluster: 'invalid|Service mesh/missing not found', weight: 1, invalid: 'Service mesh/missing not found' },
      { cluster: 'invalid|Service mesh/echo-v2 has no TCP port 81', weight: 1, invalid: 'Service mesh/echo-v2 has no TCP port 81' },
      { cluster: 'invalid|backendRef Thing.example.com mesh/x is not a Service', weight: 1, invalid: 'backendRef Thing.example.com mesh/x is not a Service' },
    ],
  });
  assert.deepEqual(by('/none'), { kind: 'respond', status: 500, body: 'Service mesh/missing not found' });
  assert.deepEqual(by('/zero'), { kind: 'respond', status: 500, body: 'every backendRef of this route rule has weight 0' });
  assert.deepEqual(by('/empty'), { kind: 'respond', status: 500, body: 'this route rule has no backendRefs' });
  assert.deepEqual(by('/single'), { kind: 'forward', backends: [{ cluster: 'outbound|80||echo-v2.mesh.svc.cluster.local', weight: 1 }] });
  // Unusable backends and direct answers are not for proxyless clients: they get the default route.
  assert.deepEqual(m.ports.get('outbound|80||echo-v1.mesh.svc.cluster.local')!.proxyless.routes.map((r) => r.name), ['default']);
  const status = m.status.find((s) => s.name === 'r')!;
  assert.deepEqual(
    status.parents[0]!.conditions.map((c) => [c.type, c.status, c.reason]),
    [
      ['Accepted', 'True', 'Accepted'],
      ['ResolvedRefs', 'False', 'InvalidKind'],
    ],
  );
  assert.match(status.parents[0]!.conditions[1]!.message, /Service mesh\/missing not found \(its share of requests is answered with an error\); Service mesh\/echo-v2 has no TCP port 81 \(.*\); backendRef Thing\.example\.com mesh\/x is not a Service/);
});

test('GAMMA: producer routes for everyone, consumer routes only for their namespace; ports without routes get the default', () => {
  const text =
    ROUTE(
      'producer',
      `  parentRefs: [{ group: "", kind: Service, name: echo-v1 }]
  rules: [{ backendRefs: [{ name: echo-v2, port: 80 }] }]`,
    ) +
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: client }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo-v1, namespace: mesh }]
  rules:
    - filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-header-set, value: set }] } }]
      backendRefs: [{ name: echo-v1, namespace: mesh, port: 80 }]
`;
  const m = buildRouteModel(SERVICES, routes(text));
  const p = m.ports.get('outbound|80||echo-v1.mesh.svc.cluster.local')!;
  assert.deepEqual(p.table.routes.map((r) => r.name), ['mesh/producer/rule-0']);
  assert.deepEqual([...p.consumers.keys()], ['client']);
  const consumer = p.consumers.get('client')!;
  assert.equal(consumer.name, 'routes|echo-v1.mesh.svc.cluster.local:80|consumer=client');
  assert.deepEqual(consumer.routes.map((r) => [r.name, r.responseHeaders]), [['client/consumer/rule-0', { set: [['x-header-set', 'set']], add: [], remove: [] }]]);
  // echo-v2 has no routes: its default table sends everything to its own cluster.
  const v2 = m.ports.get('outbound|80||echo-v2.mesh.svc.cluster.local')!;
  assert.deepEqual(v2.table.routes, [
    {
      name: 'default',
      source: { kind: 'default', namespace: '', name: '' },
      matches: [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }],
      action: { kind: 'forward', backends: [{ cluster: 'outbound|80||echo-v2.mesh.svc.cluster.local', weight: 1 }] },
    },
  ]);
  assert.equal(v2.consumers.size, 0);
});

test('status: missing Service or port, headless, tcp port, GRPCRoute precedence over HTTPRoute, invalid latest version', () => {
  const text =
    ROUTE(
      'parents',
      `  parentRefs:
    - { group: "", kind: Service, name: nope }
    - { group: "", kind: Service, name: echo, port: 9999 }
    - { group: "", kind: Service, name: headless }
    - { group: "", kind: Service, name: echo, port: 5432 }
    - { group: "", kind: Service, name: echo, sectionName: http }
    - { name: some-gateway }
  rules: [{ backendRefs: [{ name: echo-v1, port: 80 }] }]`,
      ', generation: 4',
    ) +
    ROUTE(
      'http-on-grpc',
      `  parentRefs: [{ group: "", kind: Service, name: echo, port: 7070 }]
  rules: [{ backendRefs: [{ name: echo, port: 7070 }] }]`,
    ) +
    `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: grpc, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 7070 }]
  rules: [{ backendRefs: [{ name: echo, port: 7070 }] }]
`;
  const invalid = new Map([
    ['HTTPRoute/mesh/parents', [{ file: '/cfg/r.yaml', line: 12, field: 'spec.rules[0].filters[0].type', message: 'CORS is not supported', kind: 'HTTPRoute', name: 'parents' }]],
    ['HTTPRoute/mesh/never-valid', [{ file: '/cfg/r.yaml', line: 40, field: 'spec', message: 'is required (a mapping)', kind: 'HTTPRoute', name: 'never-valid' }]],
  ]);
  const m = buildRouteModel(SERVICES, routes(text), invalid);
  const parents = m.status.find((s) => s.name === 'parents')!;
  assert.equal(parents.generation, 4);
  assert.deepEqual(parents.origin, { file: '/cfg/r.yaml', line: 1 });
  // The Gateway parent is not ours: no status entry for it.
  assert.equal(parents.parents.length, 5);
  // Its latest version is invalid: every parent says so (Accepted=False), the last good version still runs.
  for (const p of parents.parents) {
    assert.deepEqual([p.conditions[0]!.status, p.conditions[0]!.reason, p.conditions[0]!.observedGeneration], ['False', 'UnsupportedValue', 4]);
    assert.match(p.conditions[0]!.message, /^invalid: \/cfg\/r\.yaml:12: HTTPRoute "parents": field spec\.rules\[0\]\.filters\[0\]\.type: CORS is not supported; the last good version of this route is still served$/);
  }
  assert.ok(m.ports.get('outbound|80||echo.mesh.svc.cluster.local')!.table.routes.some((r) => r.source.name === 'parents'));
  // Without the invalid version, each parent gets its own reason.
  const fresh = buildRouteModel(SERVICES, routes(text)).status.find((s) => s.name === 'parents')!;
  assert.deepEqual(
    fresh.parents.map((p) => [p.conditions[0]!.status, p.conditions[0]!.reason]),
    [
      ['False', 'NoMatchingParent'],
      ['False', 'NoMatchingParent'],
      ['False', 'NoMatchingParent'],
      ['False', 'NoMatchingParent'],
      ['True', 'Accepted'],
    ],
  );
  assert.match(fresh.parents[0]!.conditions[0]!.message, /Service mesh\/nope: the Service does not exist/);
  assert.match(fresh.parents[1]!.conditions[0]!.message, /port 9999: the Service has no such TCP port/);
  assert.match(fresh.parents[2]!.conditions[0]!.message, /headless/);
  assert.match(fresh.parents[3]!.conditions[0]!.message, /port 5432 is declared tcp \(name tcp-db\)/);
  assert.equal(fresh.parents[0]!.conditions[1]!.reason, 'ResolvedRefs');
  // GEP-1294: the GRPCRoute wins port 7070; the HTTPRoute there is not accepted.
  const conflicted = m.status.find((s) => s.name === 'http-on-grpc')!;
  assert.deepEqual([conflicted.parents[0]!.conditions[0]!.status, conflicted.parents[0]!.conditions[0]!.reason], ['False', 'Conflicted']);
  assert.deepEqual(m.ports.get('outbound|7070||echo.mesh.svc.cluster.local')!.table.routes.map((r) => r.source.kind), ['GRPCRoute']);
  // A route never valid has a status with its issues and no parents (the API object names them).
  const never = m.status.find((s) => s.name === 'never-valid')!;
  assert.deepEqual([never.kind, never.parents, never.invalid![0]!.line], ['HTTPRoute', [], 40]);
});
