// AuthorizationPolicy and PeerAuthentication parsing: typed objects, and errors that name file, line and field.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../../src/controlplane/errors';
import type { AuthorizationPolicyObject, PeerAuthenticationObject } from '../../src/controlplane/objects';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';

const FILE = '/cfg/policy.yaml';

function parse(text: string): { objects: unknown[]; issues: string[] } {
  const u = parseYamlSource('t', FILE, text);
  const objects: unknown[] = [];
  const issues: string[] = [];
  for (const d of u.documents) {
    if (d.status === 'ok') objects.push(d.stored.object);
    else if (d.status === 'invalid') issues.push(...d.issues.map(formatIssue));
  }
  return { objects, issues };
}

test('an L4 AuthorizationPolicy parses into typed rules (string or number ports, empty lists as absent)', () => {
  const r = parse(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: p, namespace: app }
spec:
  action: DENY
  selector: { matchLabels: { app: web } }
  rules:
    - from:
        - source: { principals: ["cluster.local/ns/a/sa/b", "*"], notNamespaces: ["kube-*"], ipBlocks: ["10.0.0.0/8"], notIpBlocks: [] }
      to:
        - operation: { ports: ["8080", 9090], notPorts: ["22"] }
    - {}
`);
  assert.deepEqual(r.issues, []);
  const p = r.objects[0] as AuthorizationPolicyObject;
  assert.equal(p.action, 'DENY');
  assert.deepEqual(p.selector, { app: 'web' });
  assert.deepEqual(p.rules, [
    {
      from: [{ principals: ['cluster.local/ns/a/sa/b', '*'], notNamespaces: ['kube-*'], ipBlocks: ['10.0.0.0/8'] }],
      to: [{ ports: [8080, 9090], notPorts: [22] }],
    },
    { from: [], to: [] },
  ]);
  const empty = parse('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: allow-nothing }\nspec: {}\n');
  assert.deepEqual(empty.objects[0], {
    kind: 'AuthorizationPolicy',
    meta: { name: 'allow-nothing', namespace: 'default', uid: 'default/allow-nothing', labels: {}, annotations: {} },
    action: 'ALLOW',
    selector: undefined,
    rules: [],
  });
});

test('AUDIT/CUSTOM, L7 attributes, conditions and bad values are rejected with file:line:field', () => {
  const r = parse(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad, namespace: app }
spec:
  action: AUDIT
  rules:
    - from:
        - source:
            requestPrincipals: ["*"]
            principals: ["a*b"]
            ipBlocks: ["10.0.0.0/33", "nope"]
      to:
        - operation:
            methods: ["GET"]
            ports: ["http"]
      when:
        - { key: source.ip, values: ["1.2.3.4"] }
`);
  assert.deepEqual(r.issues, [
    '/cfg/policy.yaml:5: AuthorizationPolicy "bad": field spec.action: AUDIT is not supported (supported: ALLOW, DENY)',
    '/cfg/policy.yaml:17: AuthorizationPolicy "bad": field spec.rules[0].when: conditions ("when") are not supported yet; express L4 conditions with from.source and to.operation',
    '/cfg/policy.yaml:9: AuthorizationPolicy "bad": field spec.rules[0].from[0].source.requestPrincipals: "requestPrincipals" is an L7 attribute; L7 attributes are not supported yet (nodemesh authorizes at L4: principals, namespaces, ipBlocks, ports)',
    '/cfg/policy.yaml:10: AuthorizationPolicy "bad": field spec.rules[0].from[0].source.principals[0]: "a*b": a principal may hold one "*", only at the start or the end',
    '/cfg/policy.yaml:11: AuthorizationPolicy "bad": field spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33": prefix length must be 0-32',
    '/cfg/policy.yaml:11: AuthorizationPolicy "bad": field spec.rules[0].from[0].source.ipBlocks[1]: "nope" is not an IP address or CIDR range',
    '/cfg/policy.yaml:14: AuthorizationPolicy "bad": field spec.rules[0].to[0].operation.methods: "methods" is an L7 attribute; L7 attributes are not supported yet (nodemesh authorizes at L4: principals, namespaces, ipBlocks, ports)',
    '/cfg/policy.yaml:15: AuthorizationPolicy "bad": field spec.rules[0].to[0].operation.ports[0]: must be a port number 1-65535, got string "http"',
  ]);
  const custom = parse('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: c }\nspec:\n  action: CUSTOM\n  provider: { name: ext }\n');
  assert.deepEqual(custom.issues, [
    '/cfg/policy.yaml:6: AuthorizationPolicy "c": field spec.provider: is only used by action CUSTOM, which is not supported',
    '/cfg/policy.yaml:5: AuthorizationPolicy "c": field spec.action: CUSTOM is not supported (supported: ALLOW, DENY)',
  ]);
  const emptySource = parse('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: e }\nspec:\n  rules:\n    - from: [{ source: {} }]\n');
  assert.match(emptySource.issues[0], /^\/cfg\/policy.yaml:6: .*field spec.rules\[0\].from\[0\].source: must set at least one of principals/);
});

test('PeerAuthentication: modes, selector, UNSET default; bad mode and portLevelMtls rejected with file:line:field', () => {
  const r = parse(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: { name: db, namespace: app }
spec: { selector: { matchLabels: { app: db } } }
`);
  assert.deepEqual(r.issues, []);
  assert.deepEqual(
    (r.objects as PeerAuthenticationObject[]).map((p) => [p.meta.name, p.mode, p.selector]),
    [
      ['strict', 'STRICT', undefined],
      ['db', 'UNSET', { app: 'db' }],
    ],
  );
  const bad = parse(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: x }
spec:
  mtls:
    mode: strict
  portLevelMtls:
    "8080": { mode: DISABLE }
`);
  assert.deepEqual(bad.issues, [
    '/cfg/policy.yaml:8: PeerAuthentication "x": field spec.portLevelMtls: is not supported yet; set mtls.mode for the whole workload',
    '/cfg/policy.yaml:6: PeerAuthentication "x": field spec.mtls.mode: must be one of STRICT, PERMISSIVE, UNSET, DISABLE, got "strict"',
  ]);
});
