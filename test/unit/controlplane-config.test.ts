// Config parsing and the store: file:line:field errors, last good versions, unknown kinds, deletion.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../../src/controlplane/errors';
import type { ServiceObject } from '../../src/controlplane/objects';
import { ObjectStore } from '../../src/controlplane/store';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';

const FILE = '/cfg/mesh.yaml';

const GOOD = `apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: { app: echo }
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-a
  labels: { app: echo }
spec:
  containers: [{ name: c, ports: [{ name: http, containerPort: 8080 }] }]
status: { podIP: 10.0.0.1 }
`;

function load(store: ObjectStore, text: string, file = FILE) {
  return store.apply(parseYamlSource(`file:${file}`, file, text));
}

test('valid documents land in the store with their origin line; namespace defaults to "default"', () => {
  const store = new ObjectStore();
  const r = load(store, GOOD);
  assert.deepEqual(r.issues, []);
  assert.equal(r.changed, true);
  assert.deepEqual([...store.all().keys()], ['Service/default/echo', 'Pod/default/echo-a']);
  assert.equal(store.all().get('Pod/default/echo-a')!.origin.line, 12);
  const svc = store.services()[0];
  assert.deepEqual(svc.ports, [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http', appProtocol: undefined }]);
  assert.equal(store.pods()[0].serviceAccount, 'default');
  assert.equal(store.pods()[0].inMesh, true);
});

test('an invalid field is reported with file, line and field path', () => {
  const store = new ObjectStore();
  const r = load(store, GOOD.replace('port: 80', 'port: 80000'));
  assert.equal(r.issues.length, 1);
  const i = r.issues[0];
  assert.deepEqual([i.file, i.line, i.field, i.kind, i.name], [FILE, 9, 'spec.ports[0].port', 'Service', 'echo']);
  assert.equal(formatIssue(i), '/cfg/mesh.yaml:9: Service "echo": field spec.ports[0].port: must be a port number 1-65535, got number 80000');
});

test('a missing field points at its parent mapping', () => {
  const r = parseYamlSource('s', FILE, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selector: {}\n');
  const doc = r.documents[0];
  assert.equal(doc.status, 'invalid');
  if (doc.status !== 'invalid') return;
  assert.deepEqual(
    doc.issues.map((i) => [i.line, i.field]),
    [[6, 'spec.ports']],
  );
});

test('an invalid new version keeps the last good version of that object; other objects update', () => {
  const store = new ObjectStore();
  load(store, GOOD);
  const broken = GOOD.replace('targetPort: http', 'targetPort: "Not A Port"').replace('10.0.0.1', '10.0.0.9');
  const r = load(store, broken);
  assert.deepEqual(r.keptLastGood, ['Service/default/echo']);
  assert.equal(r.issues[0].field, 'spec.ports[0].targetPort');
  assert.equal(r.issues[0].line, 10);
  assert.equal((store.services()[0] as ServiceObject).ports[0].targetPort, 'http');
  assert.equal(store.pods()[0].podIP, '10.0.0.9');
  assert.equal(Object.keys(store.issues()).length, 1);
  // Fixed: the issue clears.
  load(store, GOOD);
  assert.deepEqual(store.issues(), {});
});

test('bad YAML keeps every previous object of the file and names the line', () => {
  const store = new ObjectStore();
  load(store, GOOD);
  const gen = store.generation;
  const r = load(store, GOOD + 'kind: [unclosed\n');
  assert.equal(r.changed, false);
  assert.equal(store.generation, gen);
  assert.equal(store.all().size, 2);
  assert.equal(r.issues[0].line, 20);
  assert.match(r.issues[0].message, /^YAML syntax/);
});

test('an alias before its anchor, or aliases expanding past the bound, make the file fatal instead of throwing (fuzz: config-yaml)', () => {
  // The fuzzer's input was `*\x1a*a`: toJS threw ReferenceError out of parseYamlSource, which the file watcher
  // runs from a timer, so the control plane died on one config file.
  assert.doesNotThrow(() => parseYamlSource('s', FILE, '*\x1a*a'));
  const store = new ObjectStore();
  load(store, GOOD);
  const gen = store.generation;
  const unresolved = load(store, `${GOOD}---\napiVersion: v1\nkind: Pod\nmetadata: { name: x, labels: *nope }\nspec: { containers: [{ name: c }] }\n`);
  assert.equal(unresolved.changed, false);
  assert.equal(store.generation, gen);
  assert.equal(unresolved.issues[0].line, 21);
  assert.match(unresolved.issues[0].message, /^YAML aliases: Unresolved alias/);
  const refs = Array.from({ length: 120 }, () => '*a').join(', ');
  const laughs = load(store, `apiVersion: v1\nkind: Pod\nmetadata: { name: p, labels: &a { x: y } }\nspec: { containers: [${refs}] }\n`);
  assert.equal(laughs.changed, false);
  assert.match(laughs.issues[0].message, /^YAML aliases: Excessive alias count/);
  assert.equal(store.all().size, 2, 'the previous objects stay');
});

test('unknown kinds (and foreign apiVersions of known kinds) are ignored, not rejected', () => {
  const store = new ObjectStore();
  const r = load(
    store,
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: { name: k }\n',
  );
  assert.deepEqual(r.issues, []);
  assert.deepEqual(
    r.ignored.map((d) => [d.kind, d.line]),
    [
      ['ConfigMap', 1],
      ['Service', 5],
    ],
  );
  assert.equal(store.all().size, 0);
});

test('routes, policies and destination rules are stored; enroll "false" takes a pod out of the mesh', () => {
  const store = new ObjectStore();
  load(
    store,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: ns1 }
spec: { parentRefs: [{ group: "", kind: Service, name: echo }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny }
spec: { action: DENY }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: dr }
spec: { host: echo }
---
apiVersion: v1
kind: Pod
metadata: { name: p, annotations: { nodemesh.io/enroll: "false" } }
spec: { containers: [{ name: c }] }
`,
  );
  assert.deepEqual(store.countsByKind(), { HTTPRoute: 1, AuthorizationPolicy: 1, DestinationRule: 1, Pod: 1 });
  assert.equal(store.pods()[0].inMesh, false);
});

test('removing a source drops its objects; duplicates within a file are reported', () => {
  const store = new ObjectStore();
  let changes = 0;
  store.onChange(() => changes++);
  load(store, GOOD);
  load(store, 'apiVersion: v1\nkind: Pod\nmetadata: { name: solo }\nspec: { containers: [{ name: c }] }\n', '/cfg/other.yaml');
  assert.equal(store.all().size, 3);
  assert.equal(store.removeSource(`file:${FILE}`), true);
  assert.deepEqual([...store.all().keys()], ['Pod/default/solo']);
  assert.equal(changes, 3);
  const dup = load(store, GOOD + '---\n' + GOOD.split('---\n')[1]);
  assert.equal(dup.issues.length, 1);
  assert.match(dup.issues[0].message, /duplicate of the object at \/cfg\/mesh.yaml:12/);
});

test('pod readiness follows status.phase, the Ready condition and deletionTimestamp', () => {
  const store = new ObjectStore();
  const base = (extra: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: { name: p${extra.length} }\nspec: { containers: [{ name: c }] }\nstatus: { podIP: 10.1.1.1${extra} }\n`;
  load(store, [base(''), base(', phase: Pending'), base(', conditions: [{ type: Ready, status: "False" }]')].join('---\n'));
  assert.deepEqual(
    store.pods().map((p) => p.ready),
    [true, false, false],
  );
});

test('an IP with a zone index is refused where config gives an address, with what to fix', () => {
  const store = new ObjectStore();
  const r = load(store, 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: c }] }\nstatus: { podIP: "fe80::1%eth0" }\n');
  assert.deepEqual(
    r.issues.map((i) => `${i.field}: ${i.message}`),
    ['status.podIP: "fe80::1%eth0" has a zone index (%eth0), which names one host\'s interface: give the address alone'],
  );
});
