// The ADS client's held resources: versions come back exactly as given (packed or not), slots are reused without
// mixing resources up, and a save records handles and lets the held bytes go.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentResource } from '../../src/xds/agent-resources';
import { HeldSet, sameHeld } from '../../src/xds/held-set';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import type { RouteTable } from '../../src/state/routes';

const res = (why: string): AgentResource => ({ kind: 'ignored', why });
const any = (n: number) => ({ type_url: 't', value: Buffer.from([n]) });

test('versions come back exactly as given, whatever their form', () => {
  const versions = ['0123456789abcdef', '0000000000000000', 'ffffffffffffffff', '00000000ffffffff', '0123456789ABCDEF', '0123456789abcde', '0123456789abcdef0', 'v1', '', '12 345678901234', '7'];
  const s = new HeldSet();
  versions.forEach((v, i) => s.set({ name: `r${i}`, version: v, decoded: res(v) }));
  versions.forEach((v, i) => assert.equal(s.version(`r${i}`), v));
  assert.deepEqual([...s.versions()], versions.map((v, i) => [`r${i}`, v]));
  // a packed version replaced by a text one and back
  s.set({ name: 'r0', version: 'text', decoded: res('a') });
  assert.equal(s.version('r0'), 'text');
  s.set({ name: 'r0', version: 'fedcba9876543210', decoded: res('b') });
  assert.equal(s.version('r0'), 'fedcba9876543210');
});

test('names map to their own resource across deletes, slot reuse and growth', () => {
  const s = new HeldSet();
  const live = new Map<string, { version: string; decoded: AgentResource }>();
  let seq = 0;
  // deterministic mix of inserts, replacements and deletes, past several growths of the tables
  for (let round = 0; round < 2000; round++) {
    const name = `n${(round * 7919) % 311}`;
    if (round % 5 === 3 && live.has(name)) {
      assert.equal(s.delete(name), true);
      live.delete(name);
    } else {
      const version = (seq++ % 3 === 0 ? `v${seq}` : (seq * 2654435761).toString(16).padStart(16, '0').slice(-16));
      const decoded = res(`${name}@${seq}`);
      s.set({ name, version, decoded });
      live.set(name, { version, decoded });
    }
  }
  assert.equal(s.size, live.size);
  for (const [name, want] of live) {
    assert.equal(s.has(name), true);
    assert.equal(s.get(name), want.decoded);
    assert.equal(s.version(name), want.version);
  }
  assert.deepEqual(new Set(s.names()), new Set(live.keys()));
  assert.deepEqual(new Map(s.decoded()), new Map([...live].map(([n, w]) => [n, w.decoded])));
  assert.equal(s.delete('absent'), false);
  assert.equal(s.get('absent'), undefined);
  assert.equal(s.version('absent'), undefined);
});

test('a save gets bytes while held and handles after; replaced bytes wait for the next save', () => {
  const s = HeldSet.of([
    { name: 'a', version: '0000000000000001', decoded: res('a'), any: any(1) },
    { name: 'b', version: 'v2', decoded: res('b'), saved: 7 },
    { name: 'c', version: 'v3', decoded: res('c') },
  ]);
  const first = s.forSave();
  assert.deepEqual(first.resources, [
    { name: 'a', version: '0000000000000001', any: any(1) },
    { name: 'b', version: 'v2', saved: 7 },
    { name: 'c', version: 'v3', saved: undefined },
  ]);
  first.take([10, 11, 12]);
  assert.deepEqual(
    s.forSave().resources.map((r) => [r.name, r.any, r.saved]),
    [
      ['a', undefined, 10],
      ['b', undefined, 11],
      ['c', undefined, 12],
    ],
  );
  s.set({ name: 'b', version: 'v4', decoded: res('b2'), any: any(4) });
  assert.deepEqual(s.forSave().resources[1], { name: 'b', version: 'v4', any: any(4) });
  s.dropBytes();
  assert.deepEqual(s.forSave().resources[1], { name: 'b', version: 'v4', saved: undefined });
  // a deleted resource's bytes go with it, and its slot's next owner starts clean
  s.set({ name: 'c', version: 'v5', decoded: res('c2'), any: any(5) });
  s.delete('c');
  s.set({ name: 'd', version: 'v6', decoded: res('d') });
  assert.deepEqual(s.forSave().resources.find((r) => r.name === 'd'), { name: 'd', version: 'v6', saved: undefined });
});

test('each kind comes back as it was given, around the same contents; sameHeld tells contents, not wrappers', () => {
  const cluster = { name: 'c', host: 'c.ns.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' } as ClusterInfo;
  const endpoints: EndpointInfo[] = [{ ip: '198.18.0.1', port: 80, inMesh: true }];
  const vip = { vip: '198.19.0.1', port: 80, cluster: 'c', protocol: 'http' } as Extract<AgentResource, { kind: 'vip' }>['vip'];
  const table = { name: 'rt', routes: [] } as unknown as RouteTable;
  const given: [string, AgentResource][] = [
    ['c', { kind: 'cluster', cluster, eds: true }],
    ['c2', { kind: 'cluster', cluster, eds: false }],
    ['c', { kind: 'endpoints', cluster: 'c', endpoints }],
    // an assignment not named after its cluster is held whole, so its cluster name survives
    ['other', { kind: 'endpoints', cluster: 'c', endpoints }],
    ['vip|198.19.0.1:80', { kind: 'vip', vip }],
    ['rt', { kind: 'routes', table }],
    ['inbound|n', { kind: 'inbound', node: 'n', workloads: [], policies: new Map() }],
  ];
  for (const [name, r] of given) {
    const s = HeldSet.of([{ name, version: 'v', decoded: r }]);
    const got = s.get(name)!;
    assert.deepEqual(got, r);
    assert.ok(sameHeld(got, r) && sameHeld(got, s.get(name)));
    assert.deepEqual([...s.decoded()], [[name, r]]);
  }
  assert.ok(sameHeld(undefined, undefined));
  assert.ok(!sameHeld(given[0]![1], undefined));
  assert.ok(!sameHeld(given[0]![1], given[1]![1]), 'eds differs');
  assert.ok(!sameHeld({ kind: 'cluster', cluster: { ...cluster }, eds: true }, given[0]![1]), 'another ClusterInfo, even an equal one');
  assert.ok(!sameHeld({ kind: 'endpoints', cluster: 'c', endpoints: [...endpoints] }, given[2]![1]));
  assert.ok(!sameHeld({ kind: 'ignored', why: 'x' }, { kind: 'ignored', why: 'x' }), 'wrappers held whole compare by identity');
});
