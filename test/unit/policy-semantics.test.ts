// Istio authorization semantics end to end: YAML -> validation -> selection -> RBAC in xDS bytes -> agent decode -> authorize.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../../src/controlplane/model';
import type { PodObject, PolicyObject } from '../../src/controlplane/objects';
import { PolicyIndex } from '../../src/controlplane/policy';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { authorize, ipInCidr, type InboundPolicy } from '../../src/state/authz';
import { decodeResource } from '../../src/xds/agent-resources';
import { LDS } from '../../src/xds/resource-types';

function pod(name: string, namespace: string, ip: string, labels: Record<string, string> = {}): PodObject {
  return {
    kind: 'Pod',
    meta: { name, namespace, uid: `uid-${name}`, labels, annotations: {} },
    nodeName: 'n1',
    serviceAccount: 'sa',
    containers: [{ name: 'c', ports: [] }],
    podIP: ip,
    ready: true,
    inMesh: true,
  };
}

function policies(yaml: string): PolicyObject[] {
  const u = parseYamlSource('t', 'policy.yaml', yaml);
  const out: PolicyObject[] = [];
  for (const d of u.documents) {
    if (d.status !== 'ok') assert.fail(`unexpected: ${JSON.stringify(d)}`);
    out.push(d.stored.object as PolicyObject);
  }
  return out;
}

/** The agent's view: control plane translate -> Any bytes -> decodeResource, per pod IP. */
function agentView(pods: PodObject[], yaml: string): Map<string, InboundPolicy> {
  const snap = translate(buildModel([], pods, new VipAllocator(), undefined, policies(yaml)));
  const r = snap.inbound.get('n1')!;
  const d = decodeResource(LDS, r.any);
  assert.equal(d.resource.kind, 'inbound');
  if (d.resource.kind !== 'inbound') throw new Error('unreachable');
  return d.resource.policies;
}

const A = 'spiffe://cluster.local/ns/a/sa/client';
const B = 'spiffe://cluster.local/ns/b/sa/other';

function decide(p: InboundPolicy, principal: string | null, port = 9000, sourceIp = '10.1.0.5'): string {
  const d = authorize(p, { principal, sourceIp, destinationPort: port });
  return `${d.allowed ? 'allow' : 'deny'}:${d.policy ?? '-'}`;
}

const PODS = [pod('web', 'app', '10.0.0.1', { app: 'web' }), pod('db', 'app', '10.0.0.2', { app: 'db' }), pod('x', 'other', '10.0.0.3', { app: 'web' })];

test('no policy: allow all, PERMISSIVE; ALLOW with no rules: allow nothing; {} rule: allow everything', () => {
  const none = agentView(PODS, '');
  assert.deepEqual(none.get('10.0.0.1'), { mtlsMode: 'PERMISSIVE', deny: [], allow: null });
  assert.equal(decide(none.get('10.0.0.1')!, null), 'allow:-');

  const v = agentView(
    PODS,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: nothing, namespace: app }
spec: { selector: { matchLabels: { app: web } } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: everything, namespace: app }
spec: { selector: { matchLabels: { app: db } }, rules: [{}] }
`,
  );
  assert.deepEqual(v.get('10.0.0.1')!.allow, []);
  assert.equal(decide(v.get('10.0.0.1')!, A), 'deny:-');
  assert.equal(decide(v.get('10.0.0.2')!, null), 'allow:app.everything');
  // Scoping: same labels in another namespace are not selected.
  assert.equal(v.get('10.0.0.3')!.allow, null);
});

test('DENY is checked first; ALLOW then needs a match; root namespace policies apply everywhere', () => {
  const v = agentView(
    PODS,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-a, namespace: app }
spec:
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/a/sa/client"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin-port, namespace: istio-system }
spec:
  action: DENY
  selector: { matchLabels: { app: web } }
  rules:
    - to: [{ operation: { ports: ["9901"] } }]
`,
  );
  const web = v.get('10.0.0.1')!;
  assert.equal(decide(web, A), 'allow:app.only-a');
  assert.equal(decide(web, A, 9901), 'deny:istio-system.no-admin-port');
  assert.equal(decide(web, B), 'deny:-');
  assert.equal(decide(web, null), 'deny:-');
  assert.match(authorize(web, { principal: B, sourceIp: '10.1.0.5', destinationPort: 9000 }).reason, /no ALLOW policy matched/);
  // db: no DENY (selector), ALLOW from its namespace.
  assert.equal(decide(v.get('10.0.0.2')!, A, 9901), 'allow:app.only-a');
  // x in "other": the root DENY selects it by label; no ALLOW there.
  assert.equal(decide(v.get('10.0.0.3')!, B, 9901), 'deny:istio-system.no-admin-port');
  assert.equal(decide(v.get('10.0.0.3')!, B, 9000), 'allow:-');
});

test('principal patterns, namespaces (mTLS only), notPrincipals/notNamespaces match plaintext', () => {
  const v = agentView(
    [pod('web', 'app', '10.0.0.1')],
    `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: patterns, namespace: app }
spec:
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/a/*"] } }]
      to: [{ operation: { ports: ["1"] } }]
    - from: [{ source: { principals: ["*/sa/other"] } }]
      to: [{ operation: { ports: ["2"] } }]
    - from: [{ source: { principals: ["*"] } }]
      to: [{ operation: { ports: ["3"] } }]
    - from: [{ source: { namespaces: ["b"] } }]
      to: [{ operation: { ports: ["4"] } }]
    - from: [{ source: { namespaces: ["*"] } }]
      to: [{ operation: { ports: ["5"] } }]
    - from: [{ source: { notPrincipals: ["cluster.local/ns/a/sa/client"] } }]
      to: [{ operation: { ports: ["6"] } }]
    - from: [{ source: { notNamespaces: ["a"] } }]
      to: [{ operation: { ports: ["7"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/a/sa/client"] } }, { source: { namespaces: ["b*"] } }]
      to: [{ operation: { ports: ["8"] } }]
    - from: [{ source: { namespaces: ["*b"] } }]
      to: [{ operation: { ports: ["9"] } }]
`,
  );
  const p = v.get('10.0.0.1')!;
  const row = (principal: string | null): string =>
    [1, 2, 3, 4, 5, 6, 7, 8, 9].map((port) => (authorize(p, { principal, sourceIp: '10.1.0.5', destinationPort: port }).allowed ? 'Y' : '.')).join('');
  assert.equal(row(A), 'Y.Y.Y..Y.');
  assert.equal(row(B), '.YYYYYYYY');
  assert.equal(row(null), '.....YY..');
  assert.equal(row('spiffe://cluster.local/ns/ab/sa/x'), '..Y.YYY.Y');
});

test('ipBlocks/notIpBlocks (CIDR or single IP, v4 and v6), ports/notPorts, AND inside a source', () => {
  const v = agentView(
    [pod('web', 'app', '10.0.0.1')],
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: net, namespace: app }
spec:
  action: DENY
  rules:
    - from: [{ source: { ipBlocks: ["192.168.0.0/16", "10.9.9.9", "fd00::/8"], notIpBlocks: ["192.168.1.0/24"] } }]
      to: [{ operation: { notPorts: ["22"] } }]
`,
  );
  const p = v.get('10.0.0.1')!;
  const d = (ip: string, port = 80): boolean => authorize(p, { principal: null, sourceIp: ip, destinationPort: port }).allowed;
  assert.equal(d('192.168.5.5'), false);
  assert.equal(d('::ffff:192.168.5.5'), false);
  assert.equal(d('192.168.1.5'), true);
  assert.equal(d('192.168.5.5', 22), true);
  assert.equal(d('10.9.9.9'), false);
  assert.equal(d('10.9.9.10'), true);
  assert.equal(d('fd12::1'), false);
  assert.equal(d('fe80::1'), true);
  // a link-local peer reported with its zone index is matched by its address
  assert.equal(d('fd12::1%eth0'), false);
  assert.equal(d('fe80::1%eth0'), true);
});

test('a range with a zone index is refused by the agent with the range named, not a number error', () => {
  assert.throws(() => ipInCidr('fd00::1', 'fd00::%8'), /"fd00::%8": a range cannot carry a zone index/);
  assert.equal(ipInCidr('fe80::1%eth0', 'fe80::/64'), true);
});

test('PeerAuthentication precedence: workload selector > namespace > mesh-wide; UNSET inherits; DISABLE acts as PERMISSIVE', () => {
  const objs = policies(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: mesh, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ns, namespace: app }
spec: { mtls: { mode: PERMISSIVE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: db-strict, namespace: app }
spec: { selector: { matchLabels: { app: db } }, mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: web-unset, namespace: app }
spec: { selector: { matchLabels: { app: web } } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: legacy, namespace: legacy }
spec: { mtls: { mode: DISABLE } }
`);
  const idx = new PolicyIndex(objs);
  const mode = (p: PodObject): string => {
    const r = idx.peerAuthenticationFor(p);
    return `${r.mode}:${r.policy ?? '-'}`;
  };
  assert.equal(mode(pod('db', 'app', '10.0.0.2', { app: 'db' })), 'STRICT:app/db-strict');
  assert.equal(mode(pod('web', 'app', '10.0.0.1', { app: 'web' })), 'PERMISSIVE:app/ns');
  assert.equal(mode(pod('x', 'other', '10.0.0.3')), 'STRICT:istio-system/mesh');
  assert.equal(mode(pod('l', 'legacy', '10.0.0.4')), 'PERMISSIVE:legacy/legacy');
  assert.equal(new PolicyIndex([]).peerAuthenticationFor(pod('x', 'other', '10.0.0.3')).mode, 'PERMISSIVE');

  // Delivered in chain metadata; STRICT refuses plaintext before any authorization policy.
  const v = agentView([pod('db', 'app', '10.0.0.2', { app: 'db' }), pod('x', 'other', '10.0.0.3')], `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: db-strict, namespace: app }
spec: { selector: { matchLabels: { app: db } }, mtls: { mode: STRICT } }
`);
  assert.equal(v.get('10.0.0.2')!.mtlsMode, 'STRICT');
  assert.equal(v.get('10.0.0.3')!.mtlsMode, 'PERMISSIVE');
  assert.equal(decide(v.get('10.0.0.2')!, null), 'deny:-');
  assert.equal(decide(v.get('10.0.0.2')!, A), 'allow:-');
});
