// HTTPRoute and GRPCRoute validation: typed rules in the agent's shapes, and file:line:field errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../../src/controlplane/errors';
import type { RouteObject } from '../../src/controlplane/routes/route-objects';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';

const FILE = '/cfg/routes.yaml';

function parse(text: string): { objects: RouteObject[]; issues: string[] } {
  const u = parseYamlSource('t', FILE, text);
  const objects: RouteObject[] = [];
  const issues: string[] = [];
  for (const d of u.documents) {
    if (d.status === 'ok') objects.push(d.stored.object as RouteObject);
    else if (d.status === 'invalid') issues.push(...d.issues.map(formatIssue));
  }
  return { objects, issues };
}

const HEAD = (kind = 'HTTPRoute') => `apiVersion: gateway.networking.k8s.io/v1
kind: ${kind}
metadata: { name: r, namespace: app }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
`;

test('an HTTPRoute becomes rules in the agent shapes: matches, filters, backends, defaults applied', () => {
  const r = parse(`${HEAD()}  hostnames: [echo.example.com]
  rules:
    - name: canary
      matches:
        - path: { type: PathPrefix, value: /api/ }
          headers: [{ name: X-Canary, value: "true" }, { name: x-canary, value: ignored }, { type: RegularExpression, name: x-v, value: "v[0-9]+" }]
          queryParams: [{ name: debug, value: "1" }]
          method: POST
        - path: { type: Exact, value: /exact }
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Set, value: a }, { name: x-set, value: b }], add: [{ name: X-Add, value: c }], remove: [X-Drop] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: X-Resp, value: r }] }
        - type: URLRewrite
          urlRewrite: { hostname: internal.example.com, path: { type: ReplaceFullPath, replaceFullPath: /new } }
      backendRefs:
        - { name: echo-v1, port: 8080, weight: 90 }
        - name: echo-v2
          namespace: other
          port: 8080
          weight: 0
          filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-backend, value: v2 }] } }]
      timeouts: { request: 10s, backendRequest: 1s500ms }
    - {}
`);
  assert.deepEqual(r.issues, []);
  const route = r.objects[0]!;
  assert.deepEqual(route.parentRefs, [{ group: '', kind: 'Service', namespace: 'app', name: 'echo', port: 80 }]);
  assert.deepEqual(route.hostnames, ['echo.example.com']);
  const [canary, all] = route.rules;
  assert.equal(canary!.name, 'canary');
  assert.deepEqual(canary!.matches, [
    {
      path: { kind: 'prefix', value: '/api' },
      headers: [
        { name: 'x-canary', kind: 'exact', value: 'true' },
        { name: 'x-v', kind: 'regex', value: 'v[0-9]+' },
      ],
      query: [{ name: 'debug', kind: 'exact', value: '1' }],
      method: 'POST',
    },
    { path: { kind: 'exact', value: '/exact' }, headers: [], query: [] },
  ]);
  assert.deepEqual(canary!.ranks, [
    { kind: 'http', path: 'PathPrefix', pathLength: 4, method: true, headers: 2, query: 1 },
    { kind: 'http', path: 'Exact', pathLength: 6, method: false, headers: 0, query: 0 },
  ]);
  assert.deepEqual(canary!.requestHeaders, { set: [['x-set', 'a']], add: [['x-add', 'c']], remove: ['x-drop'] });
  assert.deepEqual(canary!.responseHeaders, { set: [], add: [['x-resp', 'r']], remove: [] });
  assert.deepEqual(canary!.rewrite, { hostname: 'internal.example.com', path: { kind: 'full', value: '/new' } });
  assert.deepEqual(canary!.backends, [
    { group: '', kind: 'Service', namespace: 'app', name: 'echo-v1', port: 8080, weight: 90 },
    { group: '', kind: 'Service', namespace: 'other', name: 'echo-v2', port: 8080, weight: 0, requestHeaders: { set: [['x-backend', 'v2']], add: [], remove: [] } },
  ]);
  assert.deepEqual(canary!.timeouts, { requestMs: 10_000, backendRequestMs: 1500 });
  // A rule without matches matches every request (PathPrefix "/"); without backendRefs it has none.
  assert.deepEqual(all!.matches, [{ path: { kind: 'prefix', value: '/' }, headers: [], query: [] }]);
  assert.deepEqual(all!.backends, []);
});

test('redirects and prefix rewrites keep the prefix they replace; "" and a trailing "/" normalize', () => {
  const r = parse(`${HEAD()}  rules:
    - matches: [{ path: { type: PathPrefix, value: /old/ } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, port: 8443, statusCode: 308, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new/ } } }]
    - matches: [{ path: { type: PathPrefix, value: /strip } }]
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: "" } } }]
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { value: /moved } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
`);
  assert.deepEqual(r.issues, []);
  const [redirect, strip, moved] = r.objects[0]!.rules;
  assert.deepEqual(redirect!.redirect, { status: 308, scheme: 'https', hostname: 'example.org', port: 8443, path: { kind: 'prefix', match: '/old', value: '/new' } });
  assert.deepEqual(strip!.rewrite, { path: { kind: 'prefix', match: '/strip', value: '/' } });
  assert.deepEqual(moved!.redirect, { status: 302, hostname: 'example.org' });
});

test('a GRPCRoute service/method match is a path match; headers as for HTTP', () => {
  const r = parse(`${HEAD('GRPCRoute')}  rules:
    - matches:
        - method: { service: echo.Echo, method: Ping }
          headers: [{ name: x-tenant, value: a }]
        - method: { service: echo.Echo }
        - method: { method: Ping }
        - method: { type: RegularExpression, service: "echo\\\\..*" }
        - headers: [{ type: RegularExpression, name: x-v, value: "v[12]" }]
      backendRefs: [{ name: echo, port: 7070 }]
`);
  assert.deepEqual(r.issues, []);
  const rule = r.objects[0]!.rules[0]!;
  assert.deepEqual(
    rule.matches.map((m) => [m.path, m.headers]),
    [
      [{ kind: 'exact', value: '/echo.Echo/Ping' }, [{ name: 'x-tenant', kind: 'exact', value: 'a' }]],
      [{ kind: 'prefix', value: '/echo.Echo' }, []],
      [{ kind: 'regex', value: '/[^/]+/Ping' }, []],
      [{ kind: 'regex', value: '/(?:echo\\..*)/(?:[^/]+)' }, []],
      [{ kind: 'prefix', value: '/' }, [{ name: 'x-v', kind: 'regex', value: 'v[12]' }]],
    ],
  );
  assert.deepEqual(
    rule.ranks.map((k) => (k.kind === 'grpc' ? [k.service, k.method, k.headers] : null)),
    [
      [9, 4, 1],
      [9, 0, 0],
      [0, 4, 0],
      [8, 0, 0],
      [0, 0, 1],
    ],
  );
});

test('every invalid field is reported with file:line:field, and the object is rejected', () => {
  const r = parse(`${HEAD()}  rules:
    - matches:
        - path: { type: Regex, value: /x }
        - path: { type: PathPrefix, value: "no-slash" }
        - path: { type: Exact, value: "/a//b" }
        - path: { type: RegularExpression, value: "/a(?=b)" }
        - headers: [{ name: "bad header", value: x }]
          method: FETCH
        - queryParams: [{ type: RegularExpression, name: q, value: "(" }]
      filters:
        - type: RequestRedirect
          requestRedirect: { statusCode: 304 }
        - type: CORS
          cors: {}
        - type: Mystery
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: Host, value: x }] }
      backendRefs:
        - { name: echo }
        - { name: echo, port: 80, weight: 1000001 }
      retry: { attempts: -1 }
    - matches: [{ path: { type: Exact, value: /e } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /x } }
        - type: RequestRedirect
          requestRedirect: {}
`);
  assert.equal(r.objects.length, 0);
  const expected = [
    ['8', 'spec.rules[0].matches[0].path.type', 'must be one of Exact, PathPrefix, RegularExpression, got "Regex"'],
    ['9', 'spec.rules[0].matches[1].path.value', '"no-slash" must be an absolute path starting with "/"'],
    ['10', 'spec.rules[0].matches[2].path.value', '"/a//b" must not contain "//"'],
    ['11', 'spec.rules[0].matches[3].path.value', 'lookahead and lookbehind are not supported (RE2 has none)'],
    ['12', 'spec.rules[0].matches[4].headers[0].name', '"bad header" is not an HTTP header name'],
    ['13', 'spec.rules[0].matches[4].method', 'must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got "FETCH"'],
    ['14', 'spec.rules[0].matches[5].queryParams[0].value', '"(": not a valid regular expression'],
    ['17', 'spec.rules[0].filters[0].requestRedirect.statusCode', '304 is not a redirect status Gateway API allows (301, 302, 303, 307, 308)'],
    ['18', 'spec.rules[0].filters[1].type', 'CORS is not supported'],
    ['20', 'spec.rules[0].filters[2].type', 'must be one of RequestHeaderModifier'],
    ['22', 'spec.rules[0].filters[3].requestHeaderModifier.set[0].name', 'the Host header cannot be modified here'],
    ['24', 'spec.rules[0].backendRefs[0].port', 'is required (a port number 1-65535)'],
    ['25', 'spec.rules[0].backendRefs[1].weight', 'must be an integer 0-1000000, got number 1000001'],
    ['26', 'spec.rules[0].retry.attempts', 'must be an integer 1-100, got number -1'],
    ['30', 'spec.rules[1].filters[0].urlRewrite.path', 'ReplacePrefixMatch needs exactly one match in the rule, with a PathPrefix path'],
    ['29', 'spec.rules[1].filters', 'RequestRedirect and URLRewrite cannot be used in one rule'],
  ];
  for (const [line, field, message] of expected) {
    assert.ok(
      r.issues.some((i) => i.startsWith(`${FILE}:${line}: HTTPRoute "r": field ${field}: `) && i.includes(message)),
      `missing ${line} ${field}: ${message}\n${r.issues.join('\n')}`,
    );
  }
  assert.equal(r.issues.length, expected.length, r.issues.join('\n'));
});

test('parentRefs: Service and Gateway parents are accepted, other kinds and duplicates are not; GRPC names are checked', () => {
  const r = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs:
    - { group: "", kind: Service, name: echo }
    - { name: gw }
    - { group: "", kind: Service, name: echo }
    - { group: networking.istio.io, kind: ServiceEntry, name: ext }
  rules:
    - matches: [{ method: { service: "1bad" } }, { method: {} }]
      filters: [{ type: URLRewrite, urlRewrite: {} }]
`);
  assert.equal(r.objects.length, 0);
  for (const [field, message] of [
    ['spec.parentRefs[2]', 'is listed twice'],
    ['spec.parentRefs[3].kind', 'a parentRef must name a Service (group: "", kind: Service) for mesh routing, or a Gateway'],
    ['spec.rules[0].matches[0].method.service', '"1bad" is not a gRPC service name'],
    ['spec.rules[0].matches[1].method', 'must set service and/or method'],
    ['spec.rules[0].filters[0].type', 'must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef, got "URLRewrite"'],
  ]) {
    assert.ok(r.issues.some((i) => i.includes(`field ${field}: `) && i.includes(message)), `missing ${field}: ${message}\n${r.issues.join('\n')}`);
  }
  const ok = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: gw-only, creationTimestamp: "2024-05-01T10:00:00Z", generation: 3 }
spec:
  parentRefs: [{ name: gw, sectionName: web }]
`);
  assert.deepEqual(ok.issues, []);
  assert.deepEqual(ok.objects[0]!.parentRefs, [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'default', name: 'gw', sectionName: 'web' }]);
  assert.equal(ok.objects[0]!.created, Date.parse('2024-05-01T10:00:00Z'));
  assert.equal(ok.objects[0]!.generation, 3);
  // No rules: Gateway API's default rule, matching everything.
  assert.equal(ok.objects[0]!.rules.length, 1);
});
