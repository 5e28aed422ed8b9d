// Unit: each load-balancing policy against its contract: distribution under a known load, stickiness of the
// hashing ones, and how few keys move when an endpoint is added.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { leastRequest } from '../../src/proxy/http/balancers/least-request';
import { maglev } from '../../src/proxy/http/balancers/maglev';
import { observeLatency, peakEwma } from '../../src/proxy/http/balancers/peak-ewma';
import { fnv1a, type PickContext } from '../../src/proxy/http/balancers/picker';
import { randomPick } from '../../src/proxy/http/balancers/random';
import { ringHash } from '../../src/proxy/http/balancers/ring-hash';
import { roundRobin } from '../../src/proxy/http/balancers/round-robin';
import { ClusterState } from '../../src/proxy/http/cluster-state';
import type { EndpointInfo } from '../../src/state/services';

/** A deterministic PRNG (mulberry32), so distributions are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const eps = (n: number): EndpointInfo[] => Array.from({ length: n }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8080, inMesh: true }));

function ctx(cs: ClusterState, random: () => number, hash: number | null = null, now = 0): PickContext {
  return { state: (e) => cs.endpoint(e), hash, random, now: () => now };
}

function shares(picks: EndpointInfo[], all: EndpointInfo[]): number[] {
  return all.map((e) => picks.filter((p) => p === e).length / picks.length);
}

describe('load-balancing policies', () => {
  it('ROUND_ROBIN gives each endpoint exactly its turn, and keeps its place when the list changes', () => {
    const all = eps(3);
    const pick = roundRobin();
    const cs = new ClusterState('c', undefined);
    const seen = Array.from({ length: 9 }, () => pick(all, ctx(cs, rng(1))));
    assert.deepEqual(shares(seen, all), [1 / 3, 1 / 3, 1 / 3]);
    assert.notEqual(pick(all.slice(0, 2), ctx(cs, rng(1))), undefined);
  });

  it('RANDOM spreads evenly (within 3 % over 30,000 picks)', () => {
    const all = eps(3);
    const pick = randomPick();
    const cs = new ClusterState('c', undefined);
    const r = rng(7);
    const s = shares(Array.from({ length: 30_000 }, () => pick(all, ctx(cs, r))), all);
    for (const x of s) assert.ok(Math.abs(x - 1 / 3) < 0.03, String(s));
  });

  it('LEAST_REQUEST (P2C) sends less to an endpoint with more requests in flight', () => {
    const all = eps(3);
    const pick = leastRequest();
    const cs = new ClusterState('c', undefined);
    cs.endpoint(all[0]!).active = 10; // busy
    const r = rng(3);
    const s = shares(Array.from({ length: 9_000 }, () => pick(all, ctx(cs, r))), all);
    // The busy one wins only when drawn against itself, which P2C never does: it gets nothing.
    assert.equal(s[0], 0);
    assert.ok(Math.abs(s[1]! - 0.5) < 0.03 && Math.abs(s[2]! - 0.5) < 0.03, String(s));
  });

  it('PEAK_EWMA sends less to a slow endpoint; a spike counts at once and decays', () => {
    const all = eps(3);
    const pick = peakEwma();
    const cs = new ClusterState('c', undefined);
    observeLatency(cs.endpoint(all[0]!), 50, 1000);
    observeLatency(cs.endpoint(all[1]!), 2, 1000);
    observeLatency(cs.endpoint(all[2]!), 2, 1000);
    const r = rng(11);
    const s = shares(Array.from({ length: 9_000 }, () => pick(all, ctx(cs, r))), all);
    assert.ok(s[0]! < 0.01, `slow endpoint share ${s[0]}`);
    const e = cs.endpoint(all[1]!);
    observeLatency(e, 100, 2000);
    assert.equal(e.ewmaMs, 100, 'a spike is taken at once');
    observeLatency(e, 2, 12_000);
    assert.ok(e.ewmaMs < 40 && e.ewmaMs > 2, `decays over time: ${e.ewmaMs}`);
  });

  for (const [name, mk] of [
    ['RING_HASH', () => ringHash(4096)],
    ['MAGLEV', () => maglev()],
  ] as const) {
    it(`${name} keeps a key on one endpoint, spreads keys, and moves at most about 1/N of them when one is added`, () => {
      const four = eps(4);
      const five = eps(5);
      const pick = mk();
      const cs = new ClusterState('c', undefined);
      const r = rng(5);
      const keys = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
      const before = keys.map((k) => pick(four, ctx(cs, r, fnv1a(k))));
      for (let i = 0; i < 200; i++) assert.equal(pick(four, ctx(cs, r, fnv1a('sticky'))), pick(four, ctx(cs, r, fnv1a('sticky'))));
      const s = shares(before, four);
      for (const x of s) assert.ok(x > 0.15 && x < 0.35, `${name} shares ${s}`);
      const after = keys.map((k) => pick(five, ctx(cs, r, fnv1a(k))));
      const moved = keys.filter((_, i) => `${before[i]!.ip}` !== `${after[i]!.ip}`).length / keys.length;
      assert.ok(moved <= 1 / 5 + 0.06, `${name} moved ${(moved * 100).toFixed(1)} % of keys`);
      if (name === 'RING_HASH') {
        // 3 -> 4 endpoints, where a ring sized by dividing minimumRingSize by the count would halve every
        // endpoint's points: the keys that move all move to the newcomer.
        const three = eps(3);
        const was = keys.map((k) => pick(three, ctx(cs, r, fnv1a(k))));
        const now = keys.map((k) => pick(four, ctx(cs, r, fnv1a(k))));
        const movedTo = new Set(now.filter((e, i) => e.ip !== was[i]!.ip).map((e) => e.ip));
        assert.deepEqual([...movedTo], [four[3]!.ip], 'only to the new endpoint');
      }
      // Without a hash (no hash policy matched): random, still a valid endpoint.
      assert.ok(four.includes(pick(four, ctx(cs, r, null))));
    });
  }
});
