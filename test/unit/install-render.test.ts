// `nodemesh install`: deploy/ holds exactly its default output, values layer and validate, the DaemonSet is made right.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { AGENT_CAPABILITIES } from '../../src/install/agent-manifests';
import { installObjects, renderInstall, renderUninstall } from '../../src/install/render';
import { defaultValues, parseSet, resolveValues } from '../../src/install/values';

const root = path.resolve(__dirname, '../../..');

test('deploy/nodemesh.yaml and deploy/values.yaml are what install prints with the defaults', () => {
  assert.equal(
    fs.readFileSync(path.join(root, 'deploy/nodemesh.yaml'), 'utf8'),
    renderInstall(resolveValues()),
    'deploy/nodemesh.yaml is stale: regenerate it with "node dist/src/cli/main.js install > deploy/nodemesh.yaml"',
  );
  assert.equal(fs.readFileSync(path.join(root, 'deploy/values.yaml'), 'utf8'), stringify(defaultValues()), 'regenerate deploy/values.yaml with "nodemesh install --show-values"');
});

test('install output parses as the objects it renders; uninstall names each of them once', () => {
  const v = resolveValues();
  const docs = parseAllDocuments(renderInstall(v)).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
  assert.deepEqual(
    docs.map((d) => `${d.kind}/${d.metadata.name}`),
    installObjects(v).map((o) => `${o.kind}/${o.metadata.name}`),
  );
  for (const kind of ['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'Deployment', 'DaemonSet', 'ConfigMap', 'Service', 'PodDisruptionBudget', 'PriorityClass']) {
    assert.ok(docs.some((d) => d.kind === kind), `install renders a ${kind}`);
  }
  const gone = parseAllDocuments(renderUninstall(v)).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
  assert.equal(gone.length, docs.length);
  assert.equal(gone[gone.length - 1]!.kind, 'Namespace', 'the namespace goes last');
});

test('the agent DaemonSet: privileges with reasons, AppArmor, every taint, DNS, priority, probes, surge update', () => {
  const ds = installObjects(resolveValues()).find((o) => o.kind === 'DaemonSet') as unknown as {
    spec: { updateStrategy: { rollingUpdate: { maxSurge: number; maxUnavailable: number } }; template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> & { containers: Record<string, unknown>[]; initContainers: Record<string, unknown>[] } } };
  };
  const pod = ds.spec.template.spec;
  assert.deepEqual(ds.spec.updateStrategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.equal(pod.priorityClassName, 'nodemesh-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  assert.equal(ds.spec.template.metadata.annotations['container.apparmor.security.beta.kubernetes.io/agent'], 'unconfined');
  const agent = pod.containers[0] as { securityContext: { privileged: boolean; capabilities: { add: string[]; drop: string[] } }; readinessProbe: unknown; livenessProbe: unknown; resources: unknown; volumeMounts: { mountPropagation?: string }[] };
  assert.equal(agent.securityContext.privileged, false);
  assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL']);
  assert.deepEqual(agent.securityContext.capabilities.add, AGENT_CAPABILITIES.map((c) => c.cap));
  assert.ok(agent.readinessProbe && agent.livenessProbe && agent.resources);
  // Bidirectional propagation is only allowed to a privileged container: only the init container has it.
  assert.ok(!agent.volumeMounts.some((m) => m.mountPropagation === 'Bidirectional'));
  const init = pod.initContainers[0] as { securityContext: { privileged: boolean }; volumeMounts: { mountPropagation?: string }[] };
  assert.equal(init.securityContext.privileged, true);
  assert.equal(init.volumeMounts[0]!.mountPropagation, 'Bidirectional');
  const text = renderInstall(resolveValues());
  for (const c of AGENT_CAPABILITIES) assert.ok(text.includes(`- ${c.cap} # ${c.why}`), `the manifest says why ${c.cap}`);
});

test('values: file, --set and flags layer over the defaults; bad values name the field to fix', () => {
  const v = resolveValues({ agent: { concurrency: 2 } }, parseSet('image=registry.local/nodemesh:dev'), parseSet('agent.tolerations=[{key: gpu, operator: Exists}]'));
  assert.equal(v.agent.concurrency, 2);
  assert.equal(v.image, 'registry.local/nodemesh:dev');
  assert.deepEqual(v.agent.tolerations, [{ key: 'gpu', operator: 'Exists' }]);
  assert.equal(v.agent.cniBinDir, '/opt/cni/bin', 'untouched values keep their defaults');
  const text = renderInstall(v);
  assert.ok(text.includes('image: registry.local/nodemesh:dev'));
  assert.throws(() => resolveValues({ agent: { concurency: 2 } }), /unknown value agent\.concurency/);
  assert.throws(() => resolveValues(parseSet('agent.resources.limits.memory=lots')), /agent\.resources\.limits\.memory must be a Kubernetes quantity/);
  assert.throws(() => resolveValues({ trustDomain: 'Not A Domain' }), /value trustDomain must be a DNS name/);
  assert.throws(() => resolveValues({ agent: { tolerations: [{ operator: 'Sometimes' }] } }), /agent\.tolerations\[0\]\.operator must be Exists or Equal/);
  assert.throws(() => parseSet('novalue'), /expected PATH=VALUE/);
});
