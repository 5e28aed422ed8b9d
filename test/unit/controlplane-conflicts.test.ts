// Config conflicts in the store and the model: the older of two objects with one name, of two Services with one
// clusterIP:port, or of two pods with one IP (unless it is being deleted) wins; age is first sight then file order
// for files, creationTimestamp then uid for the API server's objects.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { locate } from '../../src/controlplane/conflicts';
import { toDocument, WATCHED_RESOURCES } from '../../src/controlplane/kubernetes-source';
import { buildModel } from '../../src/controlplane/model';
import { ObjectStore } from '../../src/controlplane/store';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { LDS } from '../../src/xds/resource-types';

function service(name: string, clusterIP: string, ports: number[], app = name): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${clusterIP}
  selector: { app: ${app} }
  ports: [${ports.map((p) => `{ name: p${p}, port: ${p}, targetPort: 8080 }`).join(', ')}]
`;
}

function load(store: ObjectStore, file: string, text: string): void {
  store.apply(parseYamlSource(`file:${file}`, file, text));
}

const model = (store: ObjectStore) => buildModel(store.services(), store.pods(), new VipAllocator());

test('one name in two files: the file seen first keeps it, even when the other sorts first; both locations are known', () => {
  const store = new ObjectStore();
  load(store, '/cfg/z.yaml', service('echo', '198.18.200.1', [80]));
  load(store, '/cfg/a.yaml', `# another copy\n${service('echo', '198.18.200.2', [80])}`);
  assert.equal(store.services()[0]!.clusterIP, '198.18.200.1');
  const [d] = store.duplicates();
  assert.equal(d!.key, 'Service/default/echo');
  assert.equal(locate(d!.kept.origin), '/cfg/z.yaml:1');
  assert.equal(locate(d!.ignored.origin), '/cfg/a.yaml:2');
  // editing the younger copy changes nothing; removing the older one hands the name over
  load(store, '/cfg/a.yaml', service('echo', '198.18.200.3', [80]));
  assert.equal(store.services()[0]!.clusterIP, '198.18.200.1');
  store.removeSource('file:/cfg/z.yaml');
  assert.equal(store.services()[0]!.clusterIP, '198.18.200.3');
  assert.deepEqual(store.duplicates(), []);
});

test('objects first seen together (start-up) are ordered by file, then position in the file', () => {
  const store = new ObjectStore();
  load(store, '/cfg/a.yaml', service('first', '198.18.200.1', [80]) + '---\n' + service('second', '198.18.200.1', [80]));
  load(store, '/cfg/b.yaml', service('third', '198.18.200.1', [80]));
  const m = model(store);
  assert.deepEqual(m.vipConflicts, [
    { vip: '198.18.200.1', ports: ['TCP/80'], kept: 'default/first', refused: 'default/second' },
    { vip: '198.18.200.1', ports: ['TCP/80'], kept: 'default/first', refused: 'default/third' },
  ]);
});

test("a Service asking for another's clusterIP:port is served without a VIP; the older keeps the VIP listener, whatever the names", () => {
  const store = new ObjectStore();
  // "zz-new" sorts after "http": without conflict handling its VIP listener would replace http's
  load(store, '/cfg/lab.yaml', service('http', '198.18.128.21', [80, 81]));
  load(store, '/cfg/takeover.yaml', service('zz-new', '198.18.128.21', [80, 9090]) + '---\n' + service('aa-other-port', '198.18.128.21', [443]));
  const m = model(store);
  assert.deepEqual(m.vipConflicts, [{ vip: '198.18.128.21', ports: ['TCP/80'], kept: 'default/http', refused: 'default/zz-new' }]);
  const byName = new Map(m.services.map((s) => [s.name, s]));
  assert.equal(byName.get('http')!.vip, '198.18.128.21');
  assert.equal(byName.get('zz-new')!.vip, undefined, 'the newer one loses the VIP, all its ports');
  assert.equal(byName.get('aa-other-port')!.vip, '198.18.128.21', 'another port on the same IP takes nothing from anyone');
  const listeners = translate(m).shared.get(LDS)!;
  const vip80 = listeners.get('vip|198.18.128.21:80')!.message as { filter_chains: { name: string }[] };
  assert.equal(vip80.filter_chains[0]!.name, 'outbound|80||http.default.svc.cluster.local');
  assert.equal(listeners.has('vip|198.18.128.21:9090'), false);
  assert.ok(listeners.has('zz-new.default.svc.cluster.local:80'), 'still served by name');
  // the older one gone: the newer one gets the VIP
  store.removeSource('file:/cfg/lab.yaml');
  const after = model(store);
  assert.deepEqual(after.vipConflicts, []);
  assert.equal(after.services.find((s) => s.name === 'zz-new')!.vip, '198.18.128.21');
});

test('a Service that conflicts only with one already refused is not refused', () => {
  const store = new ObjectStore();
  load(store, '/cfg/a.yaml', service('a', '198.18.200.9', [80]));
  load(store, '/cfg/b.yaml', service('b', '198.18.200.9', [80, 81]));
  load(store, '/cfg/c.yaml', service('c', '198.18.200.9', [81]));
  const m = model(store);
  assert.deepEqual(m.vipConflicts!.map((c) => c.refused), ['default/b']);
  assert.equal(m.services.find((s) => s.name === 'c')!.vip, '198.18.200.9');
});

test('API-server objects: the earlier creationTimestamp, then the smaller uid, keeps the VIP, whatever the order of delivery', () => {
  const store = new ObjectStore();
  const svc = WATCHED_RESOURCES.find((r) => r.kind === 'Service')!;
  const item = (name: string, uid: string, created: string) => ({
    metadata: { name, namespace: 'prod', uid, creationTimestamp: created },
    spec: { clusterIP: '10.96.0.10', selector: { app: name }, ports: [{ port: 80, targetPort: 80 }] },
  });
  const source = 'kubernetes:Service';
  const deliver = (items: unknown[]) => store.apply({ source, documents: items.map((i) => toDocument(source, svc, i)) });
  deliver([item('newer', 'u-1', '2026-03-02T00:00:00Z'), item('older', 'u-9', '2026-03-01T00:00:00Z')]);
  assert.deepEqual(model(store).vipConflicts!.map((c) => [c.kept, c.refused]), [['prod/older', 'prod/newer']]);
  deliver([item('b-same', 'u-2', '2026-03-01T00:00:00Z'), item('a-same', 'u-3', '2026-03-01T00:00:00Z')]);
  assert.deepEqual(model(store).vipConflicts!.map((c) => [c.kept, c.refused]), [['prod/b-same', 'prod/a-same']], 'same second: the smaller uid');
  const kept = store.get('Service/prod/b-same')!;
  assert.equal(locate(kept.origin, kept.object), 'Service prod/b-same (uid u-2, created 2026-03-01T00:00:00.000Z)');
});

test('API-server pods giving one IP: the older holds it unless it is being deleted; host-network pods never conflict', () => {
  const store = new ObjectStore();
  const podKind = WATCHED_RESOURCES.find((r) => r.kind === 'Pod')!;
  const item = (name: string, created: string, ip: string, extra: { deleting?: boolean; hostNetwork?: boolean } = {}) => ({
    metadata: { name, namespace: 'prod', uid: `u-${name}`, creationTimestamp: created, ...(extra.deleting ? { deletionTimestamp: '2026-03-03T00:00:00Z' } : {}) },
    spec: { nodeName: 'n1', containers: [{ name: 'c' }], ...(extra.hostNetwork ? { hostNetwork: true } : {}) },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
  });
  const source = 'kubernetes:Pod';
  const deliver = (items: unknown[]) => store.apply({ source, documents: items.map((i) => toDocument(source, podKind, i)) });
  const hosts = [item('proxy', '2026-03-01T00:00:00Z', '192.0.2.1', { hostNetwork: true }), item('exporter', '2026-03-01T00:00:00Z', '192.0.2.1', { hostNetwork: true })];
  deliver([item('newer', '2026-03-02T00:00:00Z', '10.1.0.5'), item('older', '2026-03-01T00:00:00Z', '10.1.0.5'), ...hosts]);
  assert.deepEqual(model(store).podIpConflicts!.map((c) => [c.kept, c.refused, c.reason]), [['prod/older', 'prod/newer', 'older']]);
  assert.deepEqual(store.pods().filter((p) => p.hostNetwork).map((p) => p.inMesh), [false, false], 'host-network pods are not in the mesh');
  deliver([item('newer', '2026-03-02T00:00:00Z', '10.1.0.5'), item('older', '2026-03-01T00:00:00Z', '10.1.0.5', { deleting: true }), ...hosts]);
  assert.deepEqual(model(store).podIpConflicts!.map((c) => [c.kept, c.refused, c.reason]), [['prod/newer', 'prod/older', 'refused-deleting']]);
  assert.deepEqual(model(store).workloadsByNode.get('n1')!.map((p) => p.meta.name), ['newer']);
});

test('spec.hostNetwork must be a boolean', () => {
  const store = new ObjectStore();
  const r = store.apply(parseYamlSource('file:/cfg/p.yaml', '/cfg/p.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { hostNetwork: "yes", containers: [{ name: c }] }\n'));
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0]!.field, 'spec.hostNetwork');
  assert.match(r.issues[0]!.message, /must be true or false, got string "yes"/);
});
