// Objects in a test kube-apiserver: API paths by kind, server-side apply, and pods placed on a node with a status
// as a kubelet would write it (there is no kubelet: the test plays it).

import fs from 'node:fs';
import type { Manifest } from '../../src/install/manifest';
import type { KubeApiServer } from './kube-apiserver';

const GROUP_PATH: Record<string, string> = {
  v1: '/api/v1',
};

/** The object's URL: /api/v1/namespaces/NS/configmaps/NAME, /apis/apps/v1/namespaces/NS/daemonsets/NAME, ... */
export function objectPath(o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): string {
  const base = GROUP_PATH[o.apiVersion] ?? `/apis/${o.apiVersion}`;
  const k = o.kind.toLowerCase();
  const plural = k.endsWith('s') ? `${k}es` : k.endsWith('y') ? `${k.slice(0, -1)}ies` : `${k}s`;
  const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${plural}/${o.metadata.name}`;
}

/** Server-side apply (not a dry run); resolves with the status code and the server's error text. */
export async function serverSideApply(k: KubeApiServer, o: Manifest | Record<string, unknown>): Promise<{ status: number; text: string }> {
  const m = o as Manifest;
  const r = await k.request('PATCH', `${objectPath(m)}?fieldManager=nodemesh-test&force=true`, JSON.stringify(o), { contentType: 'application/apply-patch+yaml' });
  return { status: r.status, text: r.text };
}

export interface TestPod {
  namespace: string;
  name: string;
  node: string;
  serviceAccount?: string;
  ip?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Creates the pod bound to `node` and, with an IP, writes its status Running with that podIP. Returns its uid. */
export async function createPod(k: KubeApiServer, p: TestPod): Promise<string> {
  const created = await k.must<{ metadata: { uid: string } }>('POST', `/api/v1/namespaces/${p.namespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels ?? {}, annotations: p.annotations ?? {} },
    spec: { nodeName: p.node, serviceAccountName: p.serviceAccount ?? 'default', containers: [{ name: 'main', image: 'nodemesh.test/none:1' }] },
  });
  if (p.ip) await setPodIp(k, p.namespace, p.name, p.ip);
  return created.metadata.uid;
}

export async function setPodIp(k: KubeApiServer, namespace: string, name: string, ip: string): Promise<void> {
  await k.must('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } }, { contentType: 'application/merge-patch+json' });
}

export async function createNamespace(k: KubeApiServer, name: string, labels: Record<string, string> = {}): Promise<void> {
  await k.must('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
}

export async function createServiceAccount(k: KubeApiServer, namespace: string, name: string): Promise<void> {
  await k.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } });
}

/** A kubeconfig file for `token` against `k` (e.g. a ServiceAccount's, to act with its RBAC). */
export function kubeconfigFor(k: KubeApiServer, token: string, file: string): string {
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 't', cluster: { server: k.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 't', context: { cluster: 't', user: 'u' } }],
      'current-context': 't',
    }),
    { mode: 0o600 },
  );
  return file;
}
