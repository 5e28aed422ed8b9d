// `nodemesh install` applied to a real kube-apiserver (1.20.2) with server-side apply, not a dry run, and
// `nodemesh uninstall` deleting it again; `nodemesh check --pre` against the same server, one check made to fail.
//
// Where 1.20 predates what the manifests use, the object is adapted and the test says so:
// - DaemonSet rollingUpdate.maxSurge (alpha in 1.21, beta 1.22): 1.20 drops the unknown field and then refuses
//   maxUnavailable 0, so the DaemonSet is applied with maxSurge removed and maxUnavailable 1; everything else of
//   it (privileges, AppArmor, tolerations, DNS policy, priority class, probes, projected token) is applied as is.
// - PodDisruptionBudget policy/v1 (1.21+): applied as policy/v1beta1 with the same spec.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { installObjects } from '../../src/install/render';
import type { Manifest } from '../../src/install/manifest';
import { resolveValues } from '../../src/install/values';
import { kubeUnavailable, startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver';
import { createServiceAccount, kubeconfigFor, objectPath, serverSideApply } from '../helpers/kube-objects';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../src/cli/main.js');

/** The 1.20 adaptations described at the top; returns the object to apply and what was changed. */
function forKube120(o: Manifest): { obj: Manifest; changed?: string } {
  const obj = JSON.parse(JSON.stringify(o)) as Manifest & { spec?: Record<string, unknown> };
  if (o.kind === 'DaemonSet' && obj.spec) {
    (obj.spec as { updateStrategy: unknown }).updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } };
    return { obj, changed: 'updateStrategy: maxSurge 1/maxUnavailable 0 -> maxUnavailable 1 (maxSurge is 1.21+)' };
  }
  if (o.kind === 'PodDisruptionBudget') return { obj: { ...obj, apiVersion: 'policy/v1beta1' }, changed: 'policy/v1 -> policy/v1beta1 (v1 is 1.21+)' };
  return { obj };
}

describe('install on a real kube-apiserver', { skip: kubeUnavailable() ?? false }, () => {
  let k: KubeApiServer | undefined;
  const objects = installObjects(resolveValues());
  before(async () => {
    k = await startKubeApiServer();
  });
  after(async () => {
    await k?.stop();
  });

  it('every object of nodemesh install is accepted by server-side apply', async () => {
    const adapted: string[] = [];
    for (const o of objects) {
      const { obj, changed } = forKube120(o);
      if (changed) adapted.push(`${o.kind}/${o.metadata.name}: ${changed}`);
      let r = await serverSideApply(k!, obj);
      // A custom resource's CRD is established asynchronously; nothing here depends on it, but retry once.
      if (r.status === 404 && o.kind !== 'CustomResourceDefinition') r = await serverSideApply(k!, obj);
      assert.ok(r.status === 200 || r.status === 201, `${o.kind}/${o.metadata.name} refused: ${r.status} ${r.text.slice(0, 400)}`);
    }
    assert.deepEqual(adapted.length, 2, `only the two documented 1.20 adaptations: ${adapted.join('; ')}`);
  });

  it('what the API server stored is the DaemonSet the issue asks for', async () => {
    const ds = await k!.must<{ spec: { template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> & { containers: { securityContext: { capabilities: { add: string[] }; privileged: boolean } }[]; volumes: { projected?: { sources: { serviceAccountToken?: { audience: string } }[] } }[] } } } }>(
      'GET',
      '/apis/apps/v1/namespaces/nodemesh-system/daemonsets/nodemesh-agent',
    );
    const pod = ds.spec.template.spec;
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.equal(pod.priorityClassName, 'nodemesh-node-critical');
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    assert.equal(pod.containers[0]!.securityContext.privileged, false);
    assert.ok(pod.containers[0]!.securityContext.capabilities.add.includes('BPF'));
    assert.equal(ds.spec.template.metadata.annotations['container.apparmor.security.beta.kubernetes.io/agent'], 'unconfined');
    assert.ok(pod.volumes.some((v) => v.projected?.sources[0]?.serviceAccountToken?.audience === 'nodemesh-ca'));
    const crd = await k!.request('GET', '/apis/nodemesh.io/v1alpha1/faultinjections');
    assert.equal(crd.status, 200, `the FaultInjection kind is served: ${crd.text.slice(0, 200)}`);
  });

  it('a FaultInjection is validated by its schema', async () => {
    const bad = await k!.request('POST', '/apis/nodemesh.io/v1alpha1/namespaces/nodemesh-system/faultinjections', {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'FaultInjection',
      metadata: { name: 'bad' },
      spec: { abort: { httpStatus: 42, percentage: 10 } },
    });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /spec\.abort\.httpStatus/);
    const good = await k!.request('POST', '/apis/nodemesh.io/v1alpha1/namespaces/nodemesh-system/faultinjections', {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'FaultInjection',
      metadata: { name: 'slow' },
      spec: { delay: { fixed: '150ms', percentage: 5 } },
    });
    assert.equal(good.status, 201, good.text);
  });

  it('check --pre: the API, its version limits and the RBAC to install; a user without rights gets what to fix', async () => {
    const conf = fs.mkdtempSync(path.join(k!.dir, 'cni-'));
    fs.writeFileSync(path.join(conf, '10-lab.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'lab', plugins: [{ type: 'bridge' }] }));
    const admin = await run(process.execPath, [CLI, 'check', '--pre', '--no-node', '--kubeconfig', k!.kubeconfig, '--json']);
    const results = JSON.parse(admin.stdout) as { name: string; status: string; detail: string; fix?: string }[];
    assert.ok(results.filter((r) => r.name.startsWith('rbac:')).every((r) => r.status === 'ok'), admin.stdout);
    assert.equal(results.find((r) => r.name === 'kubernetes version')?.status, 'warn');
    // A ServiceAccount with no rights: every create is denied, and the failure says who may install.
    await createServiceAccount(k!, 'default', 'nobody');
    const token = await k!.mintToken('default', 'nobody', 'https://kubernetes.default.svc.cluster.local');
    const kc = kubeconfigFor(k!, token, path.join(k!.dir, 'nobody.kubeconfig'));
    const denied = await run(process.execPath, [CLI, 'check', '--pre', '--no-node', '--kubeconfig', kc]).then(
      () => assert.fail('check --pre passed for a user without rights'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(denied.code, 1);
    assert.match(denied.stdout, /× rbac: create namespaces: denied/);
    assert.match(denied.stdout, /fix: install as a user who may create namespaces \(cluster-admin does\)/);
    const node = await run(process.execPath, [CLI, 'check', '--pre', '--no-cluster', '--cni-conf-dir', conf, '--json']).catch((e: { stdout: string }) => e);
    const nodeResults = JSON.parse(node.stdout) as { name: string; status: string; detail: string }[];
    assert.equal(nodeResults.find((r) => r.name === 'cni conflist')?.detail, path.join(conf, '10-lab.conflist'));
    assert.equal(nodeResults.find((r) => r.name === 'btf')?.status, 'ok');
  });

  it('check --proxy says what is missing: no agent scheduled (there is no scheduler/controller here)', async () => {
    const r = await run(process.execPath, [CLI, 'check', '--proxy', '--no-node', '--kubeconfig', k!.kubeconfig]).catch((e: { code: number; stdout: string }) => e);
    assert.match(r.stdout, /× agents: DaemonSet nodemesh-system\/nodemesh-agent has no agent scheduled/);
    assert.match(r.stdout, /× control plane: 0 of 2 replicas ready/);
  });

  it('nodemesh uninstall removes everything install created', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'uninstall']);
    const { parseAllDocuments } = await import('yaml');
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Manifest);
    for (const d of docs) {
      const { obj } = forKube120(d);
      const r = await k!.request('DELETE', objectPath(obj));
      assert.ok(r.status === 200 || r.status === 202 || r.status === 404, `${d.kind}/${d.metadata.name}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    for (const o of objects.filter((x) => !x.metadata.namespace && x.kind !== 'Namespace')) {
      assert.equal((await k!.request('GET', objectPath(o))).status, 404, `${o.kind}/${o.metadata.name} is gone`);
    }
  });
});
