// Unit: a refused HBONE dial (no agent on the destination's 15008: it is restarting) is retried for a while.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HboneConnectError } from '../../src/proxy/hbone/errors';
import { retryWhileRefused } from '../../src/proxy/refused-retry';

const refused = (): Error => new HboneConnectError('198.19.2.2:15008', 'ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));

test('refused dials are retried until one connects; each retry is counted', async () => {
  let calls = 0;
  let retried = 0;
  const t0 = Date.now();
  const v = await retryWhileRefused(
    async () => {
      if (++calls < 4) throw refused();
      return 'connected';
    },
    { budgetMs: 5000, gone: () => false, retried: () => retried++ },
  );
  assert.equal(v, 'connected');
  assert.equal(retried, 3);
  assert.ok(Date.now() - t0 >= 50 + 100 + 200, 'backs off between attempts');
});

test('other failures, a spent budget, or a client that went away end it at once', async () => {
  const other = new HboneConnectError('198.19.2.2:15008', 'ETIMEDOUT', Object.assign(new Error('x'), { code: 'ETIMEDOUT' }));
  let calls = 0;
  await assert.rejects(retryWhileRefused(async () => (calls++, Promise.reject(other)), { budgetMs: 5000, gone: () => false, retried: () => undefined }), /ETIMEDOUT/);
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(retryWhileRefused(async () => (calls++, Promise.reject(refused())), { budgetMs: 120, gone: () => false, retried: () => undefined }), /ECONNREFUSED/);
  assert.ok(calls >= 2 && calls <= 3, `retried within the budget only (${calls} attempts)`);
  calls = 0;
  await assert.rejects(retryWhileRefused(async () => (calls++, Promise.reject(refused())), { budgetMs: 5000, gone: () => true, retried: () => undefined }), /ECONNREFUSED/);
  assert.equal(calls, 1);
});
