// `lab up --kubernetes` with an API server it does not own (--kubeconfig) and with input it must refuse: the lab
// uses a given API server and at `lab down` deletes exactly what it created there; a lab file the mode cannot
// take, or an object the API server refuses, fails `lab up` naming the file and line, with nothing left behind.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labDown, labUpKubernetes, LabKubeError, LabManifestError, readState, readStateIfAny } from '../../src/lab';
import { REFERENCE_PLUGINS } from '../../src/lab/kube/kubelet';
import { kubeUnavailable, startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver';
import { execInPod, uniqueLabName } from '../helpers/lab';
import { waitFor } from '../helpers/wait';
import { labLeftovers, statePids } from '../fixtures/lab-leftovers';

function skipReason(): string | null {
  return kubeUnavailable() ?? (fs.existsSync(path.join(REFERENCE_PLUGINS, 'bridge')) ? null : 'containernetworking-plugins is not installed: run "bash scripts/kube-apiserver.sh"');
}

const PODS = `apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { nodeName: node-a, serviceAccountName: client, containers: [{ name: main, command: [sleep, infinity] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: default, labels: { app: web } }
spec:
  nodeName: node-b
  serviceAccountName: web
  containers: [{ name: main, command: [nodemesh, sample, http, --port, "8080", --name, web, --version, v1] }]
---
`;

describe('lab up --kubernetes: a given API server, and input it refuses', { skip: skipReason() ?? false }, () => {
  let k: KubeApiServer | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-labk8s-in-'));
  const labs: string[] = [];
  const file = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const newLab = (): string => {
    const l = uniqueLabName('k8i');
    labs.push(l);
    return l;
  };

  before(async () => {
    k = await startKubeApiServer();
  });

  after(async () => {
    try {
      for (const l of labs) if (readStateIfAny(l)) await labDown({ lab: l }).catch(() => undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await k?.stop();
    }
  });

  it('a pod IP outside its node\'s pod range is refused before anything is created', async () => {
    const lab = newLab();
    const f = file('bad-ip.yaml', `${PODS}apiVersion: v1
kind: Pod
metadata: { name: pinned, namespace: default }
spec: { nodeName: node-a, containers: [{ name: main, command: [sleep, infinity] }] }
status: { podIP: 198.19.2.50 }
`);
    await assert.rejects(labUpKubernetes({ file: f, lab }), (e: unknown) => {
      assert.ok(e instanceof LabManifestError, String(e));
      assert.match(e.message, /bad-ip\.yaml:18:\d+: status\.podIP: 198\.19\.2\.50 .*not in node node-a's pod CIDR 198\.19\.1\.0\/24/);
      return true;
    });
    assert.equal(readStateIfAny(lab), undefined);
    assert.deepEqual(labLeftovers(lab), []);
  });

  it('with --kubeconfig the lab runs on that API server, and lab down deletes what it created there and nothing else', async () => {
    // What the cluster holds already: the lab must leave it.
    await k!.must('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keep' } });
    await k!.must('POST', '/api/v1/namespaces/keep/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mine' }, data: { a: 'b' } });
    const lab = newLab();
    const f = file('given.yaml', `${PODS}apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: 198.18.128.21, selector: { app: web }, ports: [{ name: http, port: 8080, targetPort: 8080, appProtocol: http }] }
`);
    const state = await labUpKubernetes({ file: f, lab, kubeconfig: k!.kubeconfig });
    assert.equal(state.kubernetes!.own, undefined, 'no API server of its own');
    const pod = await k!.must<{ spec: { nodeName: string }; status: { podIP: string } }>('GET', '/api/v1/namespaces/default/pods/web');
    assert.equal(pod.spec.nodeName, 'node-b');
    assert.equal(pod.status.podIP, state.pods.find((p) => p.name === 'web')!.ip);
    assert.ok(state.pods.every((p) => p.enrolled), 'every pod enrolled');
    const ns = await k!.must<{ metadata: { labels?: Record<string, string> } }>('GET', '/api/v1/namespaces/default');
    assert.equal(ns.metadata.labels?.['nodemesh.io/mesh'], 'enabled', 'the existing namespace is labelled for the lab');
    await waitFor('client reaches web through the Service', async () => {
      const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', 'http://198.18.128.21:8080/', '--count', '2', '--timeout', '3000']);
      return r.code === 0 && r.stdout.includes('"servedBy":"web"');
    }, 15_000);

    const pids = statePids(readState(lab));
    await labDown({ lab });
    assert.deepEqual(labLeftovers(lab, pids), []);
    const r = await k!.request<{ items: unknown[] }>('GET', `/api/v1/nodes?labelSelector=nodemesh.io%2Flab%3D${lab}`);
    assert.equal(r.body.items.length, 0, 'the Nodes are deleted');
    assert.equal((await k!.request('GET', '/api/v1/namespaces/default/pods/web')).status, 404, 'the Pods are deleted');
    assert.equal((await k!.request('GET', '/api/v1/namespaces/default/services/web')).status, 404, 'the lab file\'s Service is deleted');
    const after = await k!.must<{ metadata: { labels?: Record<string, string> } }>('GET', '/api/v1/namespaces/default');
    assert.equal(after.metadata.labels?.['nodemesh.io/mesh'], undefined, 'the label the lab added is removed');
    assert.equal((await k!.request('GET', '/api/v1/namespaces/keep/configmaps/mine')).status, 200, 'what the lab did not create stays');
    assert.equal((await k!.request('GET', '/readyz')).status, 200, 'the API server is not the lab\'s to stop');
  });

  it('an object the API server refuses fails lab up naming its file and line, and the lab is removed', async () => {
    const lab = newLab();
    const f = file('refused.yaml', `${PODS}apiVersion: v1
kind: Service
metadata: { name: broken, namespace: default }
spec: { selector: { app: web }, ports: [{ name: http, port: 99999 }] }
`);
    await assert.rejects(labUpKubernetes({ file: f, lab }), (e: unknown) => {
      assert.ok(e instanceof LabKubeError, String(e));
      assert.equal(e.code, 'NM_LAB_KUBE_OBJECT');
      assert.match(e.message, /refused\.yaml:\d+: the API server refused Service default\/broken: .*port/);
      return true;
    });
    assert.equal(readStateIfAny(lab), undefined);
    assert.deepEqual(labLeftovers(lab), []);
  });
});
