// ServiceStore: what a pod port's protocol is when several Services select it, and updates by change giving the
// same answers as replacing every set.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PortProtocol } from '../../src/state/routes';
import { ServiceStore, type ClusterInfo, type EndpointInfo, type VipInfo } from '../../src/state/services';

function cluster(name: string, protocol: PortProtocol): ClusterInfo {
  return { name, host: `${name}.default.svc.cluster.local`, lbPolicy: 'round_robin', connectTimeoutMs: 5000, protocol };
}

function ep(ip: string, port: number, pod?: string): EndpointInfo {
  return { ip, port, inMesh: true, ...(pod ? { pod, namespace: 'default', serviceAccount: 'sa', node: 'n1' } : {}) };
}

function vip(ip: string, c: string): VipInfo {
  return { vip: ip, port: 80, cluster: c, protocol: 'tcp' } as VipInfo;
}

test('a pod port selected by several Services takes the first-ranked protocol; the owner leaving hands it back', () => {
  const s = new ServiceStore();
  s.replaceClusters([cluster('web', 'http'), cluster('raw', 'tcp')]);
  s.replaceEndpoints(new Map([
    ['web', [ep('10.0.0.1', 8080, 'a')]],
    ['raw', [ep('10.0.0.1', 8080, 'a')]],
  ]));
  assert.equal(s.portProtocol('10.0.0.1', 8080), 'tcp');
  assert.equal(s.portService('10.0.0.1', 8080), 'raw.default.svc.cluster.local');
  assert.equal(s.portProtocol('10.0.0.1', 9090), undefined);
  s.updateEndpoints(new Map([['raw', undefined]]));
  assert.equal(s.portProtocol('10.0.0.1', 8080), 'http');
  assert.equal(s.findWorkload('10.0.0.1')?.pod, 'a');
  s.updateEndpoints(new Map([['web', [ep('10.0.0.2', 8080, 'b')]]]));
  assert.equal(s.findWorkload('10.0.0.1'), undefined);
  assert.equal(s.portProtocol('10.0.0.1', 8080), undefined);
  assert.equal(s.findWorkload('10.0.0.2')?.pod, 'b');
  // Endpoints of a cluster the store does not know name workloads but give no protocol.
  s.updateClusters(['web'], []);
  assert.equal(s.portProtocol('10.0.0.2', 8080), undefined);
  assert.equal(s.findWorkload('10.0.0.2')?.pod, 'b');
});

test('updates by change leave the store as replacing every set would', () => {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const protocols: PortProtocol[] = ['tcp', 'http', 'http2', 'grpc', 'detect'];
  const clusters = new Map<string, ClusterInfo>();
  const endpoints = new Map<string, EndpointInfo[]>();
  const vips = new Map<string, VipInfo>();
  const inc = new ServiceStore();
  for (let round = 0; round < 200; round++) {
    const name = `c${rand(12)}`;
    const what = rand(3);
    if (what === 0) {
      if (rand(4) === 0) {
        inc.updateClusters(clusters.has(name) ? [name] : [], []);
        clusters.delete(name);
      } else {
        const c = cluster(name, protocols[rand(protocols.length)]!);
        clusters.set(name, c);
        inc.updateClusters([], [c]);
      }
    } else if (what === 1) {
      const eps = rand(5) === 0 ? undefined : Array.from({ length: rand(3) }, () => ep(`10.0.0.${rand(6)}`, 8080 + rand(2), `p${rand(20)}`));
      if (eps) endpoints.set(name, eps);
      else endpoints.delete(name);
      inc.updateEndpoints(new Map([[name, eps]]));
    } else {
      const ip = `198.18.0.${rand(5)}`;
      const before = vips.get(ip);
      const after = rand(4) === 0 ? undefined : vip(ip, name);
      if (after) vips.set(ip, after);
      else vips.delete(ip);
      inc.updateVips(before ? [before] : [], after ? [after] : []);
    }
    const full = new ServiceStore();
    full.replaceClusters([...clusters.values()]);
    full.replaceEndpoints(new Map(endpoints));
    full.replaceVips([...vips.values()]);
    const view = (s: ServiceStore) => ({
      snapshot: { vips: s.snapshot().vips.sort((a, b) => a.vip.localeCompare(b.vip)), clusters: s.snapshot().clusters.sort((a, b) => a.name.localeCompare(b.name)) },
      ports: Array.from({ length: 6 }, (_, i) => [8080, 8081].map((p) => s.portProtocol(`10.0.0.${i}`, p))),
      known: Array.from({ length: 6 }, (_, i) => s.findWorkload(`10.0.0.${i}`) !== undefined),
    });
    assert.deepEqual(view(inc), view(full), `round ${round}`);
  }
});
