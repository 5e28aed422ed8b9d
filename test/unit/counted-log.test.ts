// A counted log: the first event of a quiet period logged in full, the rest counted by reason in one line per interval.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CountedLog } from '../../src/telemetry/counted-log';
import type { Logger } from '../../src/telemetry/logger';
import { waitFor } from '../helpers/wait';

function fakeLogger(): { log: Logger; lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } as unknown as Logger;
  return { log, lines };
}

test('logs the first event, counts the rest by reason, and starts over after a quiet interval', async () => {
  const { log, lines } = fakeLogger();
  const c = new CountedLog(log, 'warn', 'refused', 40);
  c.record('timeout', { peer: 'a:1' });
  for (let i = 0; i < 5; i++) c.record('timeout', { peer: `b:${i}` });
  c.record('over the source bound', { peer: 'c:1' });
  assert.deepEqual(lines.slice(), [{ obj: { peer: 'a:1', reason: 'timeout' }, msg: 'refused' }]);
  await waitFor('the count', async () => lines.length === 2);
  assert.deepEqual(lines[1], {
    obj: { peer: 'c:1', count: 6, byReason: { timeout: 5, 'over the source bound': 1 }, intervalMs: 40 },
    msg: 'refused: 6 more in the last 0.04 s',
  });
  // an interval with nothing to count ends the period: the next event is logged at once again
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(lines.length, 2);
  c.record('timeout', { peer: 'd:1' });
  assert.equal(lines.length, 3);
  c.record('timeout', { peer: 'e:1' });
  c.close();
  assert.equal(lines.length, 4, 'close logs what is counted');
  assert.equal(lines[3]!.obj.count, 1);
  c.record('timeout', { peer: 'f:1' });
  assert.equal(lines.length, 4, 'nothing after close');
});
