// Route status written back to the Kubernetes API: only nodemesh's parent entries, only on change, stable times.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startControlPlane } from '../../src/controlplane/control-plane';
import type { ResourceInformer } from '../../src/controlplane/kubernetes-source';
import type { RouteKind } from '../../src/controlplane/routes/route-objects';
import { ROUTE_CONTROLLER } from '../../src/controlplane/routes/route-status';
import type { ApiRoute, RouteStatusApi } from '../../src/controlplane/routes/status-writer';
import { silentLogger } from '../../src/telemetry/logger';
import { waitFor } from '../helpers/wait';

class FakeInformer implements ResourceInformer {
  items: unknown[] = [];
  private readonly handlers = new Map<string, ((o?: unknown) => void)[]>();
  on(event: string, cb: (o?: unknown) => void): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), cb]);
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  list(): unknown[] {
    return this.items;
  }
  set(items: unknown[]): void {
    this.items = items;
    for (const h of this.handlers.get('update') ?? []) h(items[0]);
  }
}

/** The API server's view of routes: objects by key, and every status write. */
class FakeRoutes implements RouteStatusApi {
  readonly objects = new Map<string, ApiRoute>();
  readonly writes: ApiRoute[] = [];
  conflicts = 0;
  async get(kind: RouteKind, namespace: string, name: string): Promise<ApiRoute | null> {
    const o = this.objects.get(`${kind}/${namespace}/${name}`);
    return o ? structuredClone(o) : null;
  }
  async replaceStatus(kind: RouteKind, namespace: string, name: string, body: ApiRoute): Promise<void> {
    if (this.conflicts > 0) {
      this.conflicts--;
      throw Object.assign(new Error('conflict'), { code: 409 });
    }
    const o = this.objects.get(`${kind}/${namespace}/${name}`)!;
    assert.equal(body.metadata.resourceVersion, o.metadata.resourceVersion, 'writes carry the resourceVersion they read');
    o.status = body.status;
    o.metadata.resourceVersion = String(Number(o.metadata.resourceVersion) + 1);
    this.writes.push(structuredClone(body));
  }
}

const SERVICE = { metadata: { name: 'echo', namespace: 'mesh' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'echo' }, ports: [{ name: 'http', port: 80 }] } };

function route(generation: number, backend: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name: 'canary', namespace: 'mesh', generation, resourceVersion: '1', creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 80 }, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], rules: [{ backendRefs: [{ name: backend, port: 80 }], ...extra }] },
  };
}

test('route status reaches the API object: our entries only, on change, lastTransitionTime kept while a status holds', async () => {
  const informers = new Map<string, FakeInformer>([
    ['Service', new FakeInformer()],
    ['HTTPRoute', new FakeInformer()],
  ]);
  informers.get('Service')!.items = [SERVICE];
  informers.get('HTTPRoute')!.items = [route(1, 'echo')];
  const api = new FakeRoutes();
  const gatewayEntry = { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'mesh', name: 'gw' }, controllerName: 'example.com/gateway', conditions: [] };
  api.objects.set('HTTPRoute/mesh/canary', { ...(route(1, 'echo') as unknown as ApiRoute), status: { parents: [gatewayEntry] } });
  let clock = Date.parse('2024-06-01T00:00:00Z');
  const cp = await startControlPlane({
    kubernetes: { informers: (r) => informers.get(r.kind) ?? new FakeInformer(), routeStatus: api },
    xdsAddress: '127.0.0.1:0',
    metricsPort: false,
    watchDebounceMs: 5,
    pushDebounceMs: 5,
    logger: silentLogger(),
  });
  // The writer's clock (what lastTransitionTime gets) and a short retry delay.
  const writerOpts = (cp as unknown as { statusWriter: { opts: { now: () => Date; retryMs: number } } }).statusWriter.opts;
  writerOpts.now = () => new Date(clock);
  writerOpts.retryMs = 20;
  try {
    await waitFor('the first status write', async () => api.writes.length === 1);
    const first = api.objects.get('HTTPRoute/mesh/canary')!.status!.parents!;
    assert.deepEqual(first[0], gatewayEntry, "another controller's entry stays, first");
    const ours = first[1]!;
    assert.equal(ours.controllerName, ROUTE_CONTROLLER);
    assert.deepEqual(ours.parentRef, { group: '', kind: 'Service', namespace: 'mesh', name: 'echo', port: 80 });
    assert.deepEqual(
      ours.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
      [
        ['Accepted', 'True', 'Accepted', 1],
        ['ResolvedRefs', 'True', 'ResolvedRefs', 1],
      ],
    );
    const acceptedAt = ours.conditions[0]!.lastTransitionTime;

    // Generation 2 names a missing backend (after one conflict): Accepted holds (its time stays), ResolvedRefs flips.
    clock += 60_000;
    api.conflicts = 1;
    api.objects.get('HTTPRoute/mesh/canary')!.metadata.generation = 2;
    informers.get('HTTPRoute')!.set([route(2, 'missing')]);
    await waitFor('the second write', async () => api.writes.length === 2);
    const second = api.objects.get('HTTPRoute/mesh/canary')!.status!.parents![1]!;
    assert.deepEqual(
      second.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
      [
        ['Accepted', 'True', 'Accepted', 2],
        ['ResolvedRefs', 'False', 'BackendNotFound', 2],
      ],
    );
    assert.equal(second.conditions[0]!.lastTransitionTime, acceptedAt);
    assert.notEqual(second.conditions[1]!.lastTransitionTime, acceptedAt);

    // Generation 3 is invalid: Accepted=False for generation 3 with the field, while generation 2 keeps running.
    api.objects.get('HTTPRoute/mesh/canary')!.metadata.generation = 3;
    informers.get('HTTPRoute')!.set([route(3, 'missing', { filters: [{ type: 'CORS', cors: {} }] })]);
    await waitFor('the third write', async () => api.writes.length === 3);
    const third = api.objects.get('HTTPRoute/mesh/canary')!.status!.parents![1]!;
    assert.deepEqual([third.conditions[0]!.status, third.conditions[0]!.reason, third.conditions[0]!.observedGeneration], ['False', 'UnsupportedValue', 3]);
    assert.match(third.conditions[0]!.message, /\/apis\/gateway\.networking\.k8s\.io\/v1\/httproutes\/mesh\/canary:0: HTTPRoute "canary": field spec\.rules\[0\]\.filters\[0\]\.type: CORS is not supported.*the last good version of this route is still served/);
    assert.ok(cp.snapshot().shared.get('type.googleapis.com/envoy.config.route.v3.RouteConfiguration')!.has('routes|echo.mesh.svc.cluster.local:80'));

    // Nothing changes: nothing is written (a pod event rebuilds the snapshot, not the route status).
    informers.get('Service')!.set([{ ...SERVICE, metadata: { ...SERVICE.metadata, labels: { touched: 'yes' } } }]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(api.writes.length, 3);
  } finally {
    await cp.close();
  }
});
