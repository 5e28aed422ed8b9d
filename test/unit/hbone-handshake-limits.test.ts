// Bounds on TLS handshakes in progress: per source address (IPv4-mapped folded in), per pod, in all; slots
// given back once; the end of a burst of connections reported once it is quiet.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandshakeLimiter } from '../../src/proxy/hbone/handshake-limits';
import { waitFor } from '../helpers/wait';

test('admits up to each bound and refuses beyond it, naming the bound', () => {
  const limiter = new HandshakeLimiter({ perSource: 2, perPod: 3, total: 4 });
  const a = limiter.gate();
  const b = limiter.gate();
  const ok = (r: ReturnType<typeof a.admit>): (() => void) => {
    assert.ok('release' in r, JSON.stringify(r));
    return r.release;
  };
  const r1 = ok(a.admit('10.0.0.1'));
  ok(a.admit('::ffff:10.0.0.1'));
  assert.deepEqual(a.admit('10.0.0.1'), { refused: 'source' }, 'an IPv4-mapped address is the same source');
  assert.deepEqual(b.admit('10.0.0.1'), { refused: 'source' }, 'per source over every pod of the thread');
  ok(a.admit('10.0.0.2'));
  assert.deepEqual(a.admit('10.0.0.3'), { refused: 'pod' });
  ok(b.admit('10.0.0.3'));
  assert.deepEqual(b.admit('10.0.0.4'), { refused: 'total' });
  assert.equal(limiter.size, 4);
  r1();
  r1();
  assert.equal(limiter.size, 3, 'a release counts once however often it is called');
  assert.equal(a.size, 2);
  ok(b.admit('10.0.0.4'));
});

test('refuses limits that are not positive integers', () => {
  assert.throws(() => new HandshakeLimiter({ perSource: 0, perPod: 1, total: 1 }), /perSource must be a positive integer/);
  assert.throws(() => new HandshakeLimiter({ perSource: 1, perPod: 1.5, total: 1 }), /perPod/);
});

test('says once when a burst of connections is over: none in progress and none new for the quiet time', async () => {
  const over: number[] = [];
  const limiter = new HandshakeLimiter({ perSource: 5, perPod: 100, total: 100 }, { over: (n) => over.push(n), connections: 20, quietMs: 30 });
  const gate = limiter.gate();
  const held = [];
  for (let i = 0; i < 25; i++) {
    const r = gate.admit(i < 10 ? '10.0.0.1' : `10.0.1.${i}`);
    if ('release' in r) held.push(r.release);
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(over, [], 'not over while handshakes are in progress');
  for (const release of held) release();
  await waitFor('the burst to be reported over', async () => over.length === 1);
  assert.deepEqual(over, [25], 'refused connections count too');
  for (let i = 0; i < 5; i++) gate.admit('10.0.0.9');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(over, [25], 'fewer than the threshold since: no new report');
  limiter.close();
});
