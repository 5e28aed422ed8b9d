// L7 authorization, table-driven, end to end (YAML -> RBAC in xDS bytes -> agent decode -> authorize): the HTTP
// view for requests, and Istio's rules for HTTP-only fields on TCP: ALLOW rules using them never match a
// connection, DENY rules apply with those fields left out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromWire, toWire } from '../../src/agent/worker-protocol';
import { buildModel } from '../../src/controlplane/model';
import type { PodObject, PolicyObject } from '../../src/controlplane/objects';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { authorize, type AuthzRequest, type InboundPolicy } from '../../src/state/authz';
import { decodeResource, type AgentResource } from '../../src/xds/agent-resources';
import { LDS } from '../../src/xds/resource-types';

const POD: PodObject = {
  kind: 'Pod',
  meta: { name: 'web', namespace: 'app', uid: 'u-web', labels: { app: 'web' }, annotations: {} },
  nodeName: 'n1',
  serviceAccount: 'web',
  containers: [{ name: 'c', ports: [] }],
  podIP: '10.0.0.1',
  ready: true,
  inMesh: true,
};

function inbound(yaml: string): AgentResource {
  const policies = parseYamlSource('t', 'p.yaml', yaml).documents.map((d) => (d.status === 'ok' ? (d.stored.object as PolicyObject) : assert.fail(JSON.stringify(d))));
  const snap = translate(buildModel([], [POD], new VipAllocator(), undefined, policies));
  return decodeResource(LDS, snap.inbound.get('n1')!.any).resource;
}

function policyOf(r: AgentResource): InboundPolicy {
  assert.equal(r.kind, 'inbound');
  return (r as Extract<AgentResource, { kind: 'inbound' }>).policies.get('10.0.0.1')!;
}

const A = 'spiffe://cluster.local/ns/a/sa/client';
const B = 'spiffe://cluster.local/ns/b/sa/other';

/** A compact request: `tcp` (a connection) or `GET /path host` (a request), with optional principal, port, headers. */
interface Case {
  req: string;
  principal?: string | null;
  port?: number;
  from?: string;
  headers?: Record<string, string>;
  want: string;
}

function request(c: Case): AuthzRequest {
  const r: AuthzRequest = { principal: c.principal === undefined ? A : c.principal, sourceIp: c.from ?? '10.1.0.5', destinationPort: c.port ?? 9000 };
  if (c.req !== 'tcp') {
    const [method, path, host] = c.req.split(' ');
    const headers = Object.fromEntries(Object.entries(c.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    r.http = { method: method!, path: path!, host: host ?? 'web.app.svc.cluster.local', header: (n) => headers[n] };
  }
  return r;
}

const TABLE: { name: string; yaml: string; cases: Case[] }[] = [
  {
    name: 'ALLOW methods and paths: requests by method and path (query ignored); TCP never matches an HTTP-only ALLOW rule',
    yaml: `spec: { rules: [{ to: [{ operation: { methods: [GET, HEAD], paths: ["/public/*", "*.png", "/exact"] } }] }] }`,
    cases: [
      { req: 'GET /public/a', want: 'allow:app.p' },
      { req: 'GET /public/a?x=/admin', want: 'allow:app.p' },
      { req: 'HEAD /img/logo.png', want: 'allow:app.p' },
      { req: 'GET /exact', want: 'allow:app.p' },
      { req: 'GET /exact/more', want: 'deny:-' },
      { req: 'GET /Public/a', want: 'deny:-' },
      { req: 'POST /public/a', want: 'deny:-' },
      { req: 'tcp', want: 'deny:-' },
    ],
  },
  {
    name: 'ALLOW with an HTTP-only rule and an L4 rule: TCP is judged by the L4 rule alone',
    yaml: `spec: { rules: [{ to: [{ operation: { methods: [GET] } }] }, { from: [{ source: { principals: ["cluster.local/ns/a/sa/client"] } }], to: [{ operation: { ports: ["9000"] } }] }] }`,
    cases: [
      { req: 'tcp', principal: A, want: 'allow:app.p' },
      { req: 'tcp', principal: A, port: 9001, want: 'deny:-' },
      { req: 'tcp', principal: B, want: 'deny:-' },
      { req: 'GET /', principal: B, want: 'allow:app.p' },
      { req: 'POST /', principal: B, want: 'deny:-' },
      { req: 'POST /', principal: A, want: 'allow:app.p' },
    ],
  },
  {
    name: 'DENY methods on a port: on TCP the method is left out, so every connection to that port is denied',
    yaml: `spec: { action: DENY, rules: [{ to: [{ operation: { methods: [POST], ports: ["9000"] } }] }] }`,
    cases: [
      { req: 'tcp', want: 'deny:app.p' },
      { req: 'tcp', port: 9001, want: 'allow:-' },
      { req: 'GET /', want: 'allow:-' },
      { req: 'POST /', want: 'deny:app.p' },
      { req: 'POST /', port: 9001, want: 'allow:-' },
    ],
  },
  {
    name: 'DENY with only HTTP fields: every TCP connection is denied (Istio: scope DENY rules by port)',
    yaml: `spec: { action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"], notMethods: [GET] } }] }] }`,
    cases: [
      { req: 'tcp', want: 'deny:app.p' },
      { req: 'POST /admin/x', want: 'deny:app.p' },
      { req: 'GET /admin/x', want: 'allow:-' },
      { req: 'POST /public', want: 'allow:-' },
    ],
  },
  {
    name: 'hosts compare without case, exactly (a port in the Host header is part of it), with * at either end',
    yaml: `spec: { rules: [{ to: [{ operation: { hosts: ["*.example.com", "exact.com"] } }] }] }`,
    cases: [
      { req: 'GET / a.Example.COM', want: 'allow:app.p' },
      { req: 'GET / EXACT.com', want: 'allow:app.p' },
      { req: 'GET / exact.com:8080', want: 'deny:-' },
      { req: 'GET / example.com', want: 'deny:-' },
    ],
  },
  {
    name: 'notPaths and notHosts',
    yaml: `spec: { rules: [{ to: [{ operation: { notPaths: ["/admin*"], notHosts: ["internal.*"] } }] }] }`,
    cases: [
      { req: 'GET /x', want: 'allow:app.p' },
      { req: 'GET /admin/1', want: 'deny:-' },
      { req: 'GET /x internal.example', want: 'deny:-' },
    ],
  },
  {
    name: 'paths "*" matches every request; still HTTP-only for TCP',
    yaml: `spec: { rules: [{ to: [{ operation: { paths: ["*"] } }] }] }`,
    cases: [
      { req: 'GET /anything', want: 'allow:app.p' },
      { req: 'tcp', want: 'deny:-' },
    ],
  },
  {
    name: 'when request.headers: values (exact, prefix) and notValues (suffix); absent header never matches',
    yaml: `spec: { rules: [{ when: [{ key: "request.headers[X-User]", values: [alice, "bob*"], notValues: ["*-test"] }] }] }`,
    cases: [
      { req: 'GET /', headers: { 'x-user': 'alice' }, want: 'allow:app.p' },
      { req: 'GET /', headers: { 'x-user': 'bobby' }, want: 'allow:app.p' },
      { req: 'GET /', headers: { 'x-user': 'bob-test' }, want: 'deny:-' },
      { req: 'GET /', headers: { 'x-user': 'carol' }, want: 'deny:-' },
      { req: 'GET /', want: 'deny:-' },
      { req: 'tcp', want: 'deny:-' },
    ],
  },
  {
    name: 'DENY when request.headers present ("*"): requests with it are denied; on TCP the condition is left out',
    yaml: `spec: { action: DENY, rules: [{ to: [{ operation: { ports: ["9000"] } }], when: [{ key: "request.headers[x-debug]", values: ["*"] }] }] }`,
    cases: [
      { req: 'GET /', headers: { 'x-debug': '1' }, want: 'deny:app.p' },
      { req: 'GET /', want: 'allow:-' },
      { req: 'tcp', want: 'deny:app.p' },
      { req: 'tcp', port: 8080, want: 'allow:-' },
    ],
  },
  {
    name: 'when on the peer and the destination (TCP-capable): source.ip, source.namespace, source.principal, destination.port, destination.ip',
    yaml: `spec:
  rules:
    - when:
        - { key: source.ip, values: ["10.1.0.0/16"] }
        - { key: source.namespace, values: [a] }
        - { key: source.principal, notValues: ["*/sa/blocked"] }
        - { key: destination.port, values: ["9000", "9001"] }
        - { key: destination.ip, values: ["10.0.0.0/24"] }`,
    cases: [
      { req: 'tcp', want: 'allow:app.p' },
      { req: 'GET /', port: 9001, want: 'allow:app.p' },
      { req: 'tcp', from: '10.2.0.5', want: 'deny:-' },
      { req: 'tcp', principal: B, want: 'deny:-' },
      { req: 'tcp', principal: 'spiffe://cluster.local/ns/a/sa/blocked', want: 'deny:-' },
      { req: 'tcp', port: 22, want: 'deny:-' },
      { req: 'tcp', principal: null, want: 'deny:-' },
    ],
  },
  {
    name: 'destination.ip outside the pod never matches; remoteIpBlocks and serviceAccounts',
    yaml: `spec:
  rules:
    - when: [{ key: destination.ip, values: ["192.168.0.0/16"] }]
    - from: [{ source: { remoteIpBlocks: ["10.9.0.0/16"] } }]
    - from: [{ source: { serviceAccounts: ["a/client"] } }]
      to: [{ operation: { ports: ["7000"] } }]`,
    cases: [
      { req: 'tcp', principal: B, want: 'deny:-' },
      { req: 'tcp', principal: B, from: '10.9.1.1', want: 'allow:app.p' },
      { req: 'tcp', principal: A, port: 7000, want: 'allow:app.p' },
      { req: 'tcp', principal: 'spiffe://other.domain/ns/a/sa/client', port: 7000, want: 'allow:app.p' },
      { req: 'tcp', principal: B, port: 7000, want: 'deny:-' },
    ],
  },
];

for (const t of TABLE) {
  test(t.name, () => {
    const resource = inbound(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: app }\n${t.yaml}\n`);
    // What a worker thread rebuilds from the wire form decides the same.
    const worker = fromWire(structuredClone(toWire(resource)));
    for (const [where, r] of [
      ['main', resource],
      ['worker', worker],
    ] as const) {
      const p = policyOf(r);
      for (const c of t.cases) {
        const d = authorize(p, request(c));
        assert.equal(`${d.allowed ? 'allow' : 'deny'}:${d.policy ?? '-'}`, c.want, `${where}: ${JSON.stringify(c)} -> ${d.reason}`);
      }
    }
  });
}

test('a pod without policies has no HTTP view; requests are judged like connections', () => {
  const p = policyOf(inbound(''));
  assert.equal(p.http, undefined);
  assert.equal(authorize(p, request({ req: 'GET /', want: '' })).allowed, true);
});
