// Kubernetes source against fake informers: list items gain kind/apiVersion, events re-deliver, CRDs may be absent.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConfigSink } from '../../src/controlplane/file-source';
import { KubernetesSource, type ResourceInformer, type WatchedResource } from '../../src/controlplane/kubernetes-source';
import { ObjectStore, type SourceUpdate } from '../../src/controlplane/store';
import { silentLogger } from '../../src/telemetry/logger';

class FakeInformer implements ResourceInformer {
  items: unknown[] = [];
  starts = 0;
  private readonly handlers = new Map<string, ((o?: unknown) => void)[]>();
  /** failStart: start() rejects; listFailures: how many starts report a list error through the callback first. */
  constructor(
    private readonly failStart = false,
    private listFailures = 0,
  ) {}
  on(event: string, cb: (o?: unknown) => void): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), cb]);
  }
  async start(): Promise<void> {
    this.starts++;
    if (this.failStart) throw new Error('invalid kubeconfig');
    if (this.listFailures > 0) {
      this.listFailures--;
      for (const h of this.handlers.get('error') ?? []) h(new Error('connect ECONNREFUSED'));
    }
  }
  async stop(): Promise<void> {}
  list(): unknown[] {
    return this.items;
  }
  emit(event: 'add' | 'update' | 'delete', obj: unknown): void {
    for (const h of this.handlers.get(event) ?? []) h(obj);
  }
}

test('list/watch feeds the store through the same path as files; invalid API objects keep their last good version', async () => {
  const store = new ObjectStore();
  const issues: string[] = [];
  const sink: ConfigSink = {
    apply: (u: SourceUpdate) => issues.push(...store.apply(u).issues.map((i) => `${i.file}:${i.field}`)),
    remove: (s) => store.removeSource(s),
  };
  const pods = new FakeInformer();
  pods.items = [
    {
      metadata: { name: 'a', namespace: 'ns', uid: 'u1', labels: { app: 'x' } },
      spec: { nodeName: 'n1', containers: [{ name: 'c', ports: [{ containerPort: 80 }] }] },
      status: { podIP: '10.0.0.1', phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    },
  ];
  const services = new FakeInformer();
  services.items = [{ metadata: { name: 's', namespace: 'ns' }, spec: { clusterIP: '10.96.0.1', selector: { app: 'x' }, ports: [{ port: 80, targetPort: 80 }] } }];
  const routes = new FakeInformer(false, 100); // CRD absent: never holds start up
  const informers = new Map<string, FakeInformer>([
    ['Pod', pods],
    ['Service', services],
    ['HTTPRoute', routes],
  ]);
  const resources: WatchedResource[] = [
    { kind: 'Pod', apiVersion: 'v1', group: '', version: 'v1', plural: 'pods', optional: false },
    { kind: 'Service', apiVersion: 'v1', group: '', version: 'v1', plural: 'services', optional: false },
    { kind: 'HTTPRoute', apiVersion: 'gateway.networking.k8s.io/v1', group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', optional: true },
  ];
  const src = new KubernetesSource((r) => informers.get(r.kind)!, sink, silentLogger(), { resources, debounceMs: 5, retryMs: 10 });
  await src.start();
  assert.equal(routes.starts, 1);
  assert.deepEqual([...store.all().keys()].sort(), ['Pod/ns/a', 'Service/ns/s']);
  assert.equal(store.pods()[0].meta.uid, 'u1');

  // An update that breaks the Service: reported with the API path and field; the last good version stays.
  services.items = [{ metadata: { name: 's', namespace: 'ns' }, spec: { selector: { app: 'x' }, ports: [{ port: -1 }] } }];
  services.emit('update', services.items[0]);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(issues, ['/api/v1/services/ns/s:spec.ports[0].port']);
  assert.equal(store.services()[0].clusterIP, '10.96.0.1');

  pods.items = [];
  pods.emit('delete', {});
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual([...store.all().keys()], ['Service/ns/s']);
  src.close();
});

const PODS: WatchedResource = { kind: 'Pod', apiVersion: 'v1', group: '', version: 'v1', plural: 'pods', optional: false };

test('a required kind whose informer cannot start fails start with a clear error', async () => {
  const sink: ConfigSink = { apply: () => undefined, remove: () => undefined };
  const src = new KubernetesSource(() => new FakeInformer(true), sink, silentLogger(), { resources: [PODS] });
  await assert.rejects(src.start(), (err: Error & { code?: string }) => err.code === 'NM_CP_KUBERNETES' && /cannot list \/api\/v1\/pods/.test(err.message));
  src.close();
});

test('list failures of a required kind are retried; start waits for the first good list', async () => {
  const updates: SourceUpdate[] = [];
  const sink: ConfigSink = { apply: (u) => void updates.push(u), remove: () => undefined };
  const pods = new FakeInformer(false, 2);
  const src = new KubernetesSource(() => pods, sink, silentLogger(), { resources: [PODS], retryMs: 5 });
  await src.start();
  assert.equal(pods.starts, 3);
  assert.equal(updates.length, 1);
  src.close();
});
