// What an agent reports of its clusters' endpoints: per thread for /config_dump, folded over threads for the
// control plane's dashboard.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterStates } from '../../src/proxy/http/cluster-state';
import { clusterReport, endpointTotals } from '../../src/proxy/http/cluster-report';

const NOW = 1_700_000_000_000;
const ep = (ip: string, port: number) => ({ ip, port, inMesh: true });

function thread(index: number, set: (s: ClusterStates) => void) {
  const s = new ClusterStates();
  set(s);
  return clusterReport(s, index, NOW);
}

test('per thread: healthy or ejected until when, with its counts', () => {
  const [r] = thread(0, (s) => {
    const e = s.get('web', undefined).endpoint(ep('10.0.0.1', 80));
    e.ejectedUntil = NOW + 30_000;
    e.ejections = 2;
    e.active = 1;
  });
  assert.equal(r!.thread, 0);
  assert.deepEqual(r!.endpoints[0], { endpoint: '10.0.0.1:80', state: 'ejected', ejectedUntil: new Date(NOW + 30_000).toISOString(), ejections: 2, active: 1, consecutive5xx: 0, consecutiveGateway: 0, ewmaMs: 0 });
});

test('over threads: requests in flight summed, an ejection on any thread shows with the latest end, streaks and latency at their worst', () => {
  const reports = [
    ...thread(0, (s) => {
      const c = s.get('web', undefined);
      Object.assign(c.endpoint(ep('10.0.0.1', 80)), { active: 2, consecutive5xx: 1, ewmaMs: 3 });
      Object.assign(c.endpoint(ep('10.0.0.2', 80)), { active: 1, ejectedUntil: NOW + 10_000, ejections: 1 });
    }),
    ...thread(1, (s) => {
      const c = s.get('web', undefined);
      Object.assign(c.endpoint(ep('10.0.0.1', 80)), { active: 3, consecutive5xx: 4, ewmaMs: 1 });
      Object.assign(c.endpoint(ep('10.0.0.2', 80)), { active: 0, ejectedUntil: NOW + 20_000, ejections: 2 });
      Object.assign(s.get('api', undefined).endpoint(ep('10.0.0.9', 80)), { ejectedUntil: NOW - 1 });
    }),
  ];
  const t = endpointTotals(reports, NOW);
  assert.deepEqual(t.get('web')!.get('10.0.0.1:80'), { active: 5, ejectedUntilMs: 0, ejections: 0, consecutive5xx: 4, ewmaMs: 3 });
  assert.deepEqual(t.get('web')!.get('10.0.0.2:80'), { active: 1, ejectedUntilMs: NOW + 20_000, ejections: 2, consecutive5xx: 0, ewmaMs: 0 });
  assert.equal(t.get('api')!.get('10.0.0.9:80')!.ejectedUntilMs, 0, 'an ejection that has ended is healthy');
});
