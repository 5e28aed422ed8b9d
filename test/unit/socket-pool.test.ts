// Unit: the per-pod socket pool refills in batches below its low-water mark, one job at a time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NativeBinding, NativeNetnsThread } from '../../src/datapath/native';
import { SocketPool } from '../../src/datapath/socket-pool';

/** A netns thread that records each job and lets the test settle them. */
function fakeThread() {
  let next = 100;
  const jobs: { kind: 'socket' | 'sockets'; count: number; settle: (ok: boolean) => void }[] = [];
  const thread = {
    listen: () => Promise.reject(new Error('unused')),
    socket: () => Promise.resolve(next++),
    sockets: (_ns: number, _family: 4 | 6, _mark: number, count: number) =>
      new Promise<number[]>((resolve, reject) => {
        jobs.push({
          kind: 'sockets',
          count,
          settle: (ok) => (ok ? resolve(Array.from({ length: count }, () => next++)) : reject(new Error('setns: EINVAL'))),
        });
      }),
    podRouting: () => Promise.reject(new Error('unused')),
    close: () => undefined,
  } as NativeNetnsThread;
  return { thread, jobs };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

test('refills in one batch once fewer than half the target are ready', async () => {
  const { thread, jobs } = fakeThread();
  const closed: number[] = [];
  const native = { closeFd: (fd: number) => closed.push(fd) } as unknown as NativeBinding;
  const warns: string[] = [];
  const pool = new SocketPool(native, thread, 3, 0, { 4: 8, 6: 0 }, { warn: (_o, m) => warns.push(m) }, 'uid-1');
  pool.prefill();
  assert.deepEqual(
    jobs.map((j) => j.count),
    [8],
    'prefill is one job for the whole target; a family with target 0 asks for nothing',
  );
  jobs[0]!.settle(true);
  await flush();
  // Taking 4 leaves 4 ready (= half): no job yet. The 5th drops below half: one job for the 5 missing.
  for (let i = 0; i < 4; i++) await pool.take(4);
  assert.equal(jobs.length, 1);
  await pool.take(4);
  assert.deepEqual(
    jobs.map((j) => j.count),
    [8, 5],
  );
  // While that batch is in flight, more takes do not queue more jobs; an empty pool makes sockets on demand.
  const more = await Promise.all([pool.take(4), pool.take(4), pool.take(4), pool.take(4)]);
  assert.equal(jobs.length, 2);
  assert.equal(new Set(more).size, 4);
  // The batch brings 5 (the pool had run dry): taking one leaves 4, the next one asks for 5 again.
  jobs[1]!.settle(true);
  await flush();
  await pool.take(4);
  assert.equal(jobs.length, 2);
  await pool.take(4);
  assert.deepEqual(
    jobs.map((j) => j.count),
    [8, 5, 5],
  );
  // A failed batch stops refills for that family with one warning; take() still works on demand.
  jobs[2]!.settle(false);
  await flush();
  assert.deepEqual(warns, ['socket pool refill failed; creating sockets on demand']);
  // Three were ready when it failed: two more takes leave one, and still no job.
  await pool.take(4);
  await pool.take(4);
  assert.equal(jobs.length, 3);
  // close() closes the one still pooled; take() is refused from then on.
  pool.close();
  assert.equal(closed.length, 1);
  await assert.rejects(pool.take(4), /no longer enrolled/);
});

test('a batch that lands after close() is closed, not pooled', async () => {
  const { thread, jobs } = fakeThread();
  const closed: number[] = [];
  const native = { closeFd: (fd: number) => closed.push(fd) } as unknown as NativeBinding;
  const pool = new SocketPool(native, thread, 3, 0, { 4: 4, 6: 0 }, { warn: () => undefined }, 'uid-2');
  pool.prefill();
  pool.close();
  jobs[0]!.settle(true);
  await flush();
  assert.equal(closed.length, 4);
});
