// ServiceStore: what a pod port's protocol is when several Services select it, updates by change giving the
// same answers as replacing every set, VIP lookups, round-robin positions, and endpoints kept as decoded.

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

test('VIPs are found by address and port, IPv4 and IPv6 alike, and only by the exact address text', () => {
  const s = new ServiceStore();
  const v4 = vip('10.96.0.10', 'a');
  const v6 = vip('fd00::10', 'b');
  const zero = { vip: '0.0.0.0', port: 65535, cluster: 'c', protocol: 'tcp' } as VipInfo;
  const top = { vip: '255.255.255.255', port: 1, cluster: 'd', protocol: 'tcp' } as VipInfo;
  s.replaceVips([v4, v6, zero, top]);
  assert.equal(s.servicePort('10.96.0.10', 80), v4);
  assert.equal(s.servicePort('fd00::10', 80), v6);
  assert.equal(s.servicePort('0.0.0.0', 65535), zero);
  assert.equal(s.servicePort('255.255.255.255', 1), top);
  for (const [ip, port] of [['10.96.0.10', 81], ['10.96.0.11', 80], ['10.96.0.010', 80], ['010.96.0.10', 80], ['10.96.0.10.', 80], ['10.96.0', 80], ['10.96.0.256', 80], ['1.2.3.4', 80], ['fd00::11', 80], ['', 80]] as const) {
    assert.equal(s.isVip(ip, port), false, `${ip}:${port}`);
    assert.equal(s.resolve(ip, port), null, `${ip}:${port}`);
  }
  // Neighbouring addresses and ports never share a key.
  s.replaceVips([vip('10.0.0.1', 'x'), { ...vip('10.0.0.0', 'y'), port: 65535 }, { ...vip('10.0.0.1', 'w'), port: 1 }]);
  assert.equal(s.servicePort('10.0.0.1', 80)?.cluster, 'x');
  assert.equal(s.servicePort('10.0.0.0', 65535)?.cluster, 'y');
  assert.equal(s.servicePort('10.0.0.1', 1)?.cluster, 'w');
  assert.equal(s.isVip('10.0.0.0', 1), false);
  s.updateVips([vip('10.0.0.1', 'x')], [vip('10.0.0.2', 'z')]);
  assert.equal(s.isVip('10.0.0.1', 80), false);
  assert.equal(s.servicePort('10.0.0.2', 80)?.cluster, 'z');
});

test('round robin keeps its position across a cluster update and starts over when the cluster comes back', () => {
  const s = new ServiceStore();
  s.replaceClusters([cluster('web', 'tcp')]);
  s.replaceVips([vip('10.96.0.10', 'web')]);
  s.replaceEndpoints(new Map([['web', [ep('10.0.0.1', 80), ep('10.0.0.2', 80), ep('10.0.0.3', 80)]]]));
  const first = () => s.resolve('10.96.0.10', 80)!.candidates[0]!.ip;
  assert.equal(first(), '10.0.0.1');
  assert.equal(first(), '10.0.0.2');
  s.updateClusters([], [cluster('web', 'http')]);
  assert.equal(s.resolve('10.96.0.10', 80)!.cluster.protocol, 'http');
  assert.equal(first(), '10.0.0.1');
  s.updateClusters(['web'], []);
  assert.equal(s.resolve('10.96.0.10', 80), null);
  assert.deepEqual(s.endpointsOf('web'), []);
  s.updateClusters([], [cluster('web', 'tcp')]);
  assert.equal(first(), '10.0.0.1');
  assert.deepEqual(s.resolve('10.96.0.10', 80)!.candidates.map((e) => e.ip), ['10.0.0.2', '10.0.0.3', '10.0.0.1']);
});

test('a cluster without endpoints, or unknown, reads one frozen empty list; endpoint lists are the ones applied', () => {
  const s = new ServiceStore();
  s.replaceClusters([cluster('a', 'tcp'), cluster('b', 'tcp')]);
  const eps = [ep('10.0.0.1', 80, 'p')];
  s.replaceEndpoints(new Map([['a', eps], ['ghost', [ep('10.0.0.9', 80)]]]));
  assert.equal(s.endpointsOf('a'), eps);
  assert.equal(s.endpointsOf('b'), s.endpointsOf('nope'));
  assert.ok(Object.isFrozen(s.endpointsOf('b')));
  assert.equal(s.endpointsOf('b').length, 0);
  // EDS for a cluster CDS does not list: no endpoints to balance over, but the pod is still known.
  assert.equal(s.endpointsOf('ghost').length, 0);
  assert.equal(s.snapshot().clusters.find((c) => c.name === 'a')?.endpoints, eps);
});

test('endpoints indexed for a pod IP already known keep every value as decoded', () => {
  const s = new ServiceStore();
  s.replaceClusters([cluster('dir', 'tcp'), cluster('web', 'http'), cluster('raw', 'tcp')]);
  // Fresh copies of the same strings, as a decoder makes them.
  const copy = (x: string) => x.split('').join('');
  const dir = { ip: copy('10.0.0.1'), port: 15008, pod: copy('web-abc123'), namespace: 'ns', serviceAccount: 'sa', node: 'n1', inMesh: true };
  const web = { ip: copy('10.0.0.1'), port: 8080, pod: copy('web-abc123'), namespace: 'ns', serviceAccount: 'sa', app: 'web', version: 'v1', node: 'n1', inMesh: true };
  const other = { ip: copy('10.0.0.1'), port: 9090, pod: copy('other-pod'), inMesh: false };
  const expected = [structuredClone(dir), structuredClone(web), structuredClone(other)];
  s.replaceEndpoints(new Map([['dir', [dir]]]));
  s.updateEndpoints(new Map([['web', [web]], ['raw', [other]]]));
  assert.deepEqual([dir, web, other], expected);
  assert.equal(s.findWorkload('10.0.0.1')?.pod, 'other-pod');
  assert.equal(s.portProtocol('10.0.0.1', 8080), 'http');
  s.updateEndpoints(new Map([['raw', undefined]]));
  assert.equal(s.findWorkload('10.0.0.1'), web);
  s.updateEndpoints(new Map([['dir', undefined], ['web', undefined]]));
  assert.equal(s.findWorkload('10.0.0.1'), undefined);
  assert.deepEqual([dir, web, other], expected);
  // Frozen endpoints are indexed as they are.
  const frozen = Object.freeze({ ...web, port: 8081 });
  s.updateEndpoints(new Map([['dir', [dir]], ['web', [frozen]]]));
  assert.equal(s.findWorkload('10.0.0.1'), frozen);
  assert.equal(s.portProtocol('10.0.0.1', 8081), 'http');
});

test("VIPs and endpoint lists naming a known cluster keep their values, frozen ones included", () => {
  const s = new ServiceStore();
  const copy = (x: string) => x.split('').join('');
  s.replaceClusters([cluster('outbound|80||web.shop.svc.cluster.local', 'http')]);
  const v = vip('10.96.0.10', copy('outbound|80||web.shop.svc.cluster.local'));
  const frozen = Object.freeze(vip('10.96.0.11', copy('outbound|80||web.shop.svc.cluster.local')));
  s.replaceVips([v, frozen]);
  s.replaceEndpoints(new Map([[copy('outbound|80||web.shop.svc.cluster.local'), [ep('10.0.0.1', 8080, 'a')]]]));
  assert.equal(v.cluster, 'outbound|80||web.shop.svc.cluster.local');
  assert.equal(s.servicePort('10.96.0.11', 80), frozen);
  assert.deepEqual(s.resolve('10.96.0.10', 80)?.candidates.map((e) => e.ip), ['10.0.0.1']);
  assert.deepEqual(s.resolve('10.96.0.11', 80)?.candidates.map((e) => e.ip), ['10.0.0.1']);
  assert.equal(s.portService('10.0.0.1', 8080), 'outbound|80||web.shop.svc.cluster.local.default.svc.cluster.local');
  s.updateEndpoints(new Map([[copy('outbound|80||web.shop.svc.cluster.local'), undefined]]));
  assert.equal(s.endpointsOf('outbound|80||web.shop.svc.cluster.local').length, 0);
  assert.equal(s.findWorkload('10.0.0.1'), undefined);
});
