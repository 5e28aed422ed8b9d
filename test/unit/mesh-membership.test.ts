// Mesh membership: the control plane calls a pod in the mesh exactly when its node's agent would enroll it
// (enroll/membership.ts), so other agents speak HBONE only to pods that have a listener; the file-mode lab
// enrolls by the same rule.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wanted, wantedUnlessNamespaceSays } from '../../src/enroll/membership';
import { meshPods } from '../../src/controlplane/membership';
import { buildModel } from '../../src/controlplane/model';
import { ObjectStore } from '../../src/controlplane/store';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { planAddresses } from '../../src/lab/address-plan';
import { namespaceLabels, parseManifest } from '../../src/lab/manifest';

const pod = (name: string, namespace: string, extra = ''): string => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${namespace}, labels: { app: db }${extra} }
spec: { nodeName: n1, containers: [{ name: c }] }
status: { podIP: 198.19.1.${10 + name.length}, phase: Running }
`;

const namespace = (name: string, labels = '{}'): string => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name}, labels: ${labels} }\n`;

function store(...docs: string[]): ObjectStore {
  const s = new ObjectStore();
  const r = s.apply(parseYamlSource('file:/cfg/mesh.yaml', '/cfg/mesh.yaml', docs.join('---\n')));
  assert.deepEqual(r.issues, []);
  return s;
}

const membership = (s: ObjectStore): Record<string, boolean> => Object.fromEntries(meshPods(s).map((p) => [`${p.meta.namespace}/${p.meta.name}`, p.inMesh]));

test('a namespace with a Namespace object decides by its label; one without counts as in the mesh; the pod annotation overrides', () => {
  const s = store(
    namespace('shop', '{ nodemesh.io/mesh: enabled }'),
    namespace('legacy'),
    pod('web', 'shop'),
    pod('db', 'legacy'),
    pod('opted-in', 'legacy', ', annotations: { nodemesh.io/enroll: "true" }'),
    pod('opted-out', 'shop', ', annotations: { nodemesh.io/enroll: "false" }'),
    pod('files', 'nowhere'),
  );
  assert.deepEqual(membership(s), { 'shop/web': true, 'legacy/db': false, 'legacy/opted-in': true, 'shop/opted-out': false, 'nowhere/files': true });
});

test('every combination agrees with the rule agents enroll by, for a namespace that has its object', () => {
  const labelSets: Record<string, string>[] = [{}, { 'nodemesh.io/mesh': 'enabled' }, { 'nodemesh.io/mesh': 'disabled' }];
  const annotations = ['', ', annotations: { nodemesh.io/enroll: "true" }', ', annotations: { nodemesh.io/enroll: "false" }'];
  for (const labels of labelSets) {
    for (const a of annotations) {
      for (const hostNetwork of [false, true]) {
        const doc = pod('p', 'ns', a).replace('spec: {', `spec: { hostNetwork: ${hostNetwork},`);
        const s = store(namespace('ns', JSON.stringify(labels)), doc);
        const p = s.pods()[0]!;
        const agent = wanted({ namespace: 'ns', annotations: p.meta.annotations, hostNetwork }, labels).wanted;
        assert.equal(meshPods(s)[0]!.inMesh, agent, `labels ${JSON.stringify(labels)}, annotation "${a}", hostNetwork ${hostNetwork}`);
      }
    }
  }
});

test("a pod outside the mesh is a plaintext endpoint and no node's workload; the copy is the same object from one build to the next", () => {
  const s = store(namespace('legacy'), pod('db', 'legacy'), 'apiVersion: v1\nkind: Service\nmetadata: { name: db, namespace: legacy }\nspec: { selector: { app: db }, ports: [{ port: 5432 }] }\n');
  const first = meshPods(s);
  assert.equal(meshPods(s)[0], first[0], 'one copy per pod object');
  const model = buildModel(s.services(), first, new VipAllocator());
  assert.deepEqual(model.services[0]!.ports[0]!.endpoints.map((e) => [e.pod, e.inMesh]), [['db', false]]);
  assert.equal(model.workloadsByNode.get('n1'), undefined);
  // labelling the namespace takes the pod in
  s.apply(parseYamlSource('file:/cfg/ns.yaml', '/cfg/ns.yaml', namespace('legacy', '{ nodemesh.io/mesh: enabled }')));
  assert.equal(membership(s)['legacy/db'], false, 'the older Namespace object (in mesh.yaml) stays in force over a duplicate');
  s.apply(parseYamlSource('file:/cfg/mesh.yaml', '/cfg/mesh.yaml', [namespace('legacy', '{ nodemesh.io/mesh: enabled }'), pod('db', 'legacy')].join('---\n')));
  assert.equal(membership(s)['legacy/db'], true);
});

test('the file-mode lab enrolls by the same rule', () => {
  const labPod = (name: string, ns: string): string =>
    `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: ${ns} }\nspec: { nodeName: node-a, containers: [{ name: c, command: [sleep, infinity] }] }\n`;
  const m = parseManifest([namespace('legacy'), namespace('shop', '{ nodemesh.io/mesh: enabled }'), labPod('db', 'legacy'), labPod('web', 'shop'), labPod('files', 'nowhere')].join('---\n'), '/lab.yaml');
  const plan = planAddresses('t', m.pods, namespaceLabels(m));
  const enrolled = Object.fromEntries(plan.nodes.flatMap((n) => n.pods).map((p) => [`${p.spec.namespace}/${p.spec.name}`, p.enroll]));
  assert.deepEqual(enrolled, { 'legacy/db': false, 'shop/web': true, 'nowhere/files': true });
  for (const [key, enroll] of Object.entries(enrolled)) {
    const [ns] = key.split('/');
    assert.equal(enroll, wantedUnlessNamespaceSays({ namespace: ns!, annotations: {}, hostNetwork: false }, namespaceLabels(m).get(ns!)));
  }
});
