// Pod IPs in the model: of two pods giving one IP, one holds it (not being deleted, else the older) and the other is
// served without it; host-network and finished pods claim none. The node's inbound listener then has one chain per
// IP, which the agent accepts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../../src/controlplane/model';
import type { PodObject, ServiceObject } from '../../src/controlplane/objects';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { decodeResource } from '../../src/xds/agent-resources';

const web: ServiceObject = {
  kind: 'Service',
  meta: { name: 'web', namespace: 'shop', uid: 'web', labels: {}, annotations: {} },
  selector: { app: 'web' },
  ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
};

function pod(namespace: string, name: string, ip: string, extra: Partial<PodObject> = {}): PodObject {
  return {
    kind: 'Pod',
    meta: { name, namespace, uid: `uid-${namespace}-${name}`, labels: { app: 'web' }, annotations: {} },
    nodeName: 'n2',
    serviceAccount: 'web',
    containers: [{ name: 'web', ports: [] }],
    podIP: ip,
    ready: true,
    inMesh: true,
    ...extra,
  };
}

const model = (pods: PodObject[]) => buildModel([web], pods, new VipAllocator());
const endpoints = (pods: PodObject[]): string[] => model(pods).services[0]!.ports[0]!.endpoints.map((e) => `${e.namespace}/${e.pod}=${e.address}`);
const workloads = (pods: PodObject[]): string[] => (model(pods).workloadsByNode.get('n2') ?? []).map((p) => `${p.meta.namespace}/${p.meta.name}`);

test('two pods giving one IP: the older holds it, the newer is no endpoint and no workload, and the conflict names both', () => {
  const pods = [pod('shop', 'web-4', '198.19.2.10'), pod('shop', 'web-5', '198.19.2.10'), pod('shop', 'web-6', '198.19.2.11')];
  assert.deepEqual(endpoints(pods), ['shop/web-4=198.19.2.10', 'shop/web-6=198.19.2.11']);
  assert.deepEqual(workloads(pods), ['shop/web-4', 'shop/web-6']);
  assert.deepEqual(model(pods).podIpConflicts, [{ ip: '198.19.2.10', kept: 'shop/web-4', refused: 'shop/web-5', reason: 'older' }]);
  // the order given is the age: the other way round, the other pod holds it
  assert.deepEqual(endpoints([pods[1]!, pods[0]!]), ['shop/web-5=198.19.2.10']);
});

test('a pod being deleted yields the IP to a live one, however old; among pods all being deleted the oldest holds it', () => {
  const old = pod('shop', 'web-4', '198.19.2.10', { deleting: true, ready: false });
  const fresh = pod('default', 'web-9', '198.19.2.10');
  assert.deepEqual(workloads([old, fresh]), ['default/web-9']);
  assert.deepEqual(model([old, fresh]).podIpConflicts, [{ ip: '198.19.2.10', kept: 'default/web-9', refused: 'shop/web-4', reason: 'refused-deleting' }]);
  const both = [old, pod('shop', 'web-5', '198.19.2.10', { deleting: true, ready: false })];
  assert.deepEqual(workloads(both), ['shop/web-4']);
  assert.deepEqual(model(both).podIpConflicts, [{ ip: '198.19.2.10', kept: 'shop/web-4', refused: 'shop/web-5', reason: 'older' }]);
});

test('three claimants: one holder, two conflicts; IPv6 spellings of one address are one claim', () => {
  const pods = [pod('a', 'p', 'fd00::10'), pod('b', 'p', 'fd00:0:0::10'), pod('c', 'p', 'FD00::10')];
  assert.deepEqual(workloads(pods), ['a/p']);
  assert.deepEqual(
    model(pods).podIpConflicts?.map((c) => `${c.kept}>${c.refused}`),
    ['a/p>b/p', 'a/p>c/p'],
  );
});

test('host-network pods share their node IP without conflict and are not in the mesh; finished pods give their IP up', () => {
  const hostA = pod('shop', 'ingress-a', '192.0.2.1', { hostNetwork: true, inMesh: false });
  const hostB = pod('shop', 'ingress-b', '192.0.2.1', { hostNetwork: true, inMesh: false });
  const done = pod('shop', 'job-1', '198.19.2.10', { phase: 'Succeeded', ready: false });
  const failed = pod('shop', 'job-2', '198.19.2.10', { phase: 'Failed', ready: false });
  const next = pod('shop', 'web-4', '198.19.2.10');
  const m = model([hostA, hostB, done, failed, next]);
  assert.deepEqual(m.podIpConflicts, []);
  assert.deepEqual(workloads([hostA, hostB, done, failed, next]), ['shop/web-4'], 'finished and host-network pods are no workloads');
  assert.deepEqual(endpoints([hostA, hostB, next]), ['shop/ingress-a=192.0.2.1', 'shop/ingress-b=192.0.2.1', 'shop/web-4=198.19.2.10']);
  assert.ok(m.services[0]!.ports[0]!.endpoints.filter((e) => e.address === '192.0.2.1').every((e) => !e.inMesh), 'host-network endpoints are reached in plaintext');
});

test("the node's inbound listener has one chain per pod IP and decodes as an agent would", () => {
  // the fuzzer's input: one pod in shop, one in default (its namespace key misspelt), both 198.19.2.10 on n2
  const snapshot = translate(model([pod('shop', 'web-4', '198.19.2.10'), pod('default', 'web-4', '198.19.2.10')]));
  const inbound = snapshot.inbound.get('n2')!;
  const { resource } = decodeResource(inbound.typeUrl, inbound.any);
  assert.ok(resource);
  const chains = (inbound.message as { filter_chains: { name: string }[] }).filter_chains.map((c) => c.name);
  assert.ok(chains.some((n) => n.includes('shop/web-4')), `chains: ${chains.join(', ')}`);
  assert.ok(!chains.some((n) => n.includes('default/web-4')), `chains: ${chains.join(', ')}`);
});
