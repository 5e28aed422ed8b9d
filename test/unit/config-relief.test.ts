// After a large xDS change, memory is handed back once the burst settles; small changes never trigger it.

import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { ConfigRelief, LARGE_CONFIG_CHANGE } from '../../src/agent/config-relief';
import { silentLogger } from '../../src/telemetry/logger';

test('one relief after a burst of large commits has been quiet for a second; none for small ones', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let runs = 0;
    const r = new ConfigRelief(() => runs++, silentLogger());
    r.committed(LARGE_CONFIG_CHANGE - 1);
    mock.timers.tick(5_000);
    assert.equal(runs, 0, 'a small change');
    r.committed(LARGE_CONFIG_CHANGE);
    mock.timers.tick(600);
    r.committed(5 * LARGE_CONFIG_CHANGE);
    mock.timers.tick(600);
    assert.equal(runs, 0, 'the burst goes on');
    mock.timers.tick(500);
    assert.equal(runs, 1);
    mock.timers.tick(5_000);
    assert.equal(runs, 1, 'once per burst');
    r.committed(LARGE_CONFIG_CHANGE);
    r.close();
    mock.timers.tick(5_000);
    assert.equal(runs, 1, 'nothing after close');
  } finally {
    mock.timers.reset();
  }
});

test('without a way to relieve memory (tests, other platforms) nothing is scheduled', () => {
  const r = new ConfigRelief(undefined, silentLogger());
  r.committed(10 * LARGE_CONFIG_CHANGE);
  r.close();
});
