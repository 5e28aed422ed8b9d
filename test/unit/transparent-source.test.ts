// Unit: which socket the agent connects to a pod's application from (the client's address, or the pod's own
// where it cannot be had), and that every fallback is counted.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import type { PodSockets, ProxyContext } from '../../src/proxy/context';
import { upstreamSource } from '../../src/proxy/transparent-source';
import type { Workload } from '../../src/state/workloads';
import { silentLogger } from '../../src/telemetry/logger';
import { ProxyMetrics } from '../../src/telemetry/metrics';

const pod: Workload = { uid: 'u', name: 'web', namespace: 'default', serviceAccount: 'web', ips: ['198.19.2.2'], labels: {}, annotations: {}, workloadName: 'web' };
const target = { ip: '198.19.2.2', port: 8080 };

function setup(transparent: PodSockets['transparentSocket']): { ctx: ProxyContext; sockets: PodSockets; calls: string[]; counted: () => Promise<number> } {
  const registry = new Registry();
  const metrics = new ProxyMetrics(registry);
  const calls: string[] = [];
  const sockets: PodSockets = {
    newSocket: async (family) => {
      calls.push(`plain ${family}`);
      return 7;
    },
    originalDst: () => null,
    transparentSocket: transparent,
  };
  const ctx = { log: silentLogger(), metrics } as unknown as ProxyContext;
  const counted = async (): Promise<number> => {
    const m = await registry.getSingleMetricAsString('nodemesh_proxy_errors_total');
    return Number(/reason="source_not_preserved"} (\d+)/.exec(m)?.[1] ?? 0);
  };
  return { ctx, sockets, calls, counted };
}

test('inbound from another address: a transparent socket bound to the client, released once connected', async () => {
  let released = 0;
  const t = setup((family, from, to) => Promise.resolve({ fd: 9, connected: () => void (released++, assert.deepEqual([family, from, to], [4, '198.19.1.5', target])) }));
  const src = await upstreamSource(t.ctx, { direction: 'inbound', pod, src: { ip: '198.19.1.5', port: 40000 }, sockets: t.sockets }, target);
  assert.equal(src.fd, 9);
  src.connected();
  assert.equal(released, 1);
  assert.equal(await t.counted(), 0);
  assert.deepEqual(t.calls, []);
});

test('an IPv4-mapped client address is the IPv4 address', async () => {
  const seen: string[] = [];
  const t = setup((_f, from) => (seen.push(from), Promise.resolve({ fd: 9, connected: () => undefined })));
  await upstreamSource(t.ctx, { direction: 'inbound', pod, src: { ip: '::ffff:198.19.1.5', port: 1 }, sockets: t.sockets }, target);
  assert.deepEqual(seen, ['198.19.1.5']);
});

test('the kernel refuses the address, or the pod has no transparent sockets: the pod\'s own address, counted', async () => {
  const refused = setup(() => Promise.reject(Object.assign(new Error('bind 198.19.1.5: Cannot assign requested address'), { code: 'EADDRNOTAVAIL' })));
  const a = await upstreamSource(refused.ctx, { direction: 'inbound', pod, src: { ip: '198.19.1.5', port: 1 }, sockets: refused.sockets }, target);
  assert.equal(a.fd, 7);
  assert.deepEqual(refused.calls, ['plain 4']);
  assert.equal(await refused.counted(), 1);

  const none = setup(() => null);
  await upstreamSource(none.ctx, { direction: 'inbound', pod, src: { ip: '198.19.1.5', port: 1 }, sockets: none.sockets }, target);
  await upstreamSource(none.ctx, { direction: 'inbound', pod, src: { ip: 'fd00::5', port: 1 }, sockets: none.sockets }, target);
  assert.equal(await none.counted(), 2, 'a client of the other family cannot be preserved either');
});

test('outbound, and inbound from the pod itself: a plain socket, nothing counted', async () => {
  const t = setup(() => assert.fail('no transparent socket expected'));
  await upstreamSource(t.ctx, { direction: 'outbound', pod, src: { ip: '127.0.0.1', port: 1 }, sockets: t.sockets }, { ip: '198.19.9.9', port: 80 });
  await upstreamSource(t.ctx, { direction: 'inbound', pod, src: { ip: '198.19.2.2', port: 1 }, sockets: t.sockets }, target);
  assert.deepEqual(t.calls, ['plain 4', 'plain 4']);
  assert.equal(await t.counted(), 0);
});
