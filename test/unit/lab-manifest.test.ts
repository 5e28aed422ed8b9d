// Unit tests of the lab manifest parser: valid pods, kept non-Pod objects, errors with file:line and field.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LabError, LabManifestError } from '../../src/lab/errors';
import { loadManifest, parseManifest } from '../../src/lab/manifest';
import { expandVars } from '../../src/lab/up';

const F = 'lab.yaml';

function issuesOf(text: string): LabManifestError {
  try {
    parseManifest(text, F);
  } catch (e) {
    assert.ok(e instanceof LabManifestError, `expected LabManifestError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the manifest to be rejected');
}

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: { app: web }
  annotations:
    nodemesh.io/enroll: "false"
spec:
  nodeName: node-a
  serviceAccountName: web-sa
  containers:
    - name: main
      command: ["nodemesh", "sample", "http"]
      args: ["--port", 8080]
      env:
        - { name: GREETING, value: hello }
        - { name: PORT, value: 8080 }
status:
  podIP: 198.19.1.9
`;

describe('lab manifest', () => {
  it('parses a pod with every supported field', () => {
    const m = parseManifest(POD, F);
    assert.equal(m.pods.length, 1);
    const p = m.pods[0]!;
    assert.equal(p.name, 'web');
    assert.equal(p.namespace, 'shop');
    assert.equal(p.nodeName, 'node-a');
    assert.equal(p.serviceAccount, 'web-sa');
    assert.deepEqual(p.labels, { app: 'web' });
    assert.deepEqual(p.annotations, { 'nodemesh.io/enroll': 'false' });
    assert.deepEqual(p.containers, [{ name: 'main', argv: ['nodemesh', 'sample', 'http', '--port', '8080'], env: { GREETING: 'hello', PORT: '8080' } }]);
    assert.equal(p.podIP, '198.19.1.9');
    assert.deepEqual(p.loc, { file: F, line: 1, col: 1 });
    assert.equal(p.podIPLoc?.line, 20);
  });

  it('defaults namespace and service account, keeps other kinds, skips empty documents', () => {
    const m = parseManifest(
      `---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: n1, containers: [{name: c, command: [sleep, "1"]}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: x}\nspec: {ports: [{port: 80}]}\n`,
      F,
    );
    assert.equal(m.pods[0]?.namespace, 'default');
    assert.equal(m.pods[0]?.serviceAccount, 'default');
    assert.deepEqual(m.others.map((o) => [o.kind, o.namespace, o.name, o.loc.line]), [['Service', 'x', 'svc', 9]]);
  });

  it('names the pod and the line when nodeName is missing', () => {
    const e = issuesOf(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\nspec:\n  containers: [{name: c, command: [true]}]\n`);
    assert.equal(e.code, 'NM_LAB_MANIFEST_INVALID');
    assert.equal(e.issues[0]?.field, 'spec.nodeName');
    assert.equal(e.issues[0]?.line, 6); // the spec map, where nodeName belongs
    assert.match(e.message, /^lab\.yaml:6:\d+: spec\.nodeName: is required: pod "orphan"/);
  });

  it('rejects an unquoted boolean annotation at its line', () => {
    const e = issuesOf(POD.replace('nodemesh.io/enroll: "false"', 'nodemesh.io/enroll: false'));
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0]?.field, 'metadata.annotations.nodemesh.io/enroll');
    assert.equal(e.issues[0]?.line, 8);
    assert.match(e.message, /quote it/);
  });

  it('reports every issue, each with its own line', () => {
    const e = issuesOf(`apiVersion: v1
kind: Pod
metadata:
  name: Bad_Name
spec:
  nodeName: node-a
  containers:
    - name: one
      command: []
    - name: two
      command: echo hi
      env:
        - name: X
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
status:
  podIP: 10.0.0.300
`);
    const got = e.issues.map((i) => `${i.line} ${i.field}`);
    assert.deepEqual(got, [
      '4 metadata.name',
      '9 spec.containers[0].command',
      '11 spec.containers[1].command',
      '14 spec.containers[1].env[0].valueFrom',
      '16 status.podIP',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    const e = issuesOf(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {app: [unclosed\nspec: {}\n`);
    assert.equal(e.issues[0]?.field, '(yaml)');
    assert.ok((e.issues[0]?.line ?? 0) >= 5, e.message);
  });

  it('rejects duplicate pods and duplicate pod IPs across documents', () => {
    const pod = (name: string, ip: string): string =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec: {nodeName: n, containers: [{name: c, command: ["true"]}]}\nstatus: {podIP: ${ip}}\n`;
    const e = issuesOf([pod('a', '198.19.1.5'), pod('a', '198.19.1.6'), pod('b', '198.19.1.5')].join('---\n'));
    assert.deepEqual(
      e.issues.map((i) => `${i.line} ${i.field}`),
      ['7 metadata.name', '17 status.podIP'],
    );
    assert.match(e.message, /duplicate pod default\/a \(first defined at line 1\)/);
    assert.match(e.message, /198\.19\.1\.5 is already used by pod default\/a/);
  });

  it('rejects a manifest without pods and a document that is not an object', () => {
    assert.match(issuesOf('apiVersion: v1\nkind: Service\nmetadata: {name: s}\n').message, /no Pod objects/);
    assert.match(issuesOf('- just\n- a list\n').message, /^lab\.yaml:1:1: \(document\): each document must be a Kubernetes object/);
  });

  it('names the file when it cannot be read', () => {
    assert.throws(() => loadManifest('/nonexistent/lab.yaml'), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_MANIFEST_READ' && /\/nonexistent\/lab\.yaml/.test(e.message));
  });

  it('accepts examples/lab/basic.yaml', () => {
    const file = path.resolve(__dirname, '..', '..', '..', 'examples', 'lab', 'basic.yaml');
    assert.ok(fs.existsSync(file), file);
    const m = loadManifest(file);
    assert.deepEqual(m.pods.map((p) => `${p.name}@${p.nodeName}`), ['client@node-a', 'echo-a@node-a', 'echo-b@node-b', 'http-a@node-a', 'http-b@node-b', 'legacy@node-b']);
    assert.deepEqual(m.others.map((o) => `${o.kind}/${o.name}`), ['Service/echo', 'Service/http', 'Service/http-v1', 'Service/http-v2', 'HTTPRoute/http-canary']);
  });

  it('expands $(VAR) in commands like Kubernetes does', () => {
    const env = { POD_IP: '198.19.1.2', PORT: '80' };
    assert.equal(expandVars('--host=$(POD_IP):$(PORT)', env), '--host=198.19.1.2:80');
    assert.equal(expandVars('$$(POD_IP) $(NOPE) $POD_IP', env), '$(POD_IP) $(NOPE) $POD_IP');
  });
});
