// The main thread's side of data-plane workers: state crosses threads intact (policies are rebuilt, not lost),
// the identity replica follows the main thread, and a crashed worker restarts with everything replayed.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { fromWire, toWire } from '../../src/agent/worker-protocol';
import { DataPlaneWorkers } from '../../src/agent/workers';
import type { PodDatapath } from '../../src/datapath/types';
import { IdentityReplica } from '../../src/identity/replica';
import type { CertBundle } from '../../src/identity/types';
import { authorize, compilePolicy, type InboundPolicy } from '../../src/state/authz';
import type { Workload } from '../../src/state/workloads';
import { silentLogger } from '../../src/telemetry/logger';
import type { AgentResource } from '../../src/xds/agent-resources';
import { waitFor } from '../helpers/wait';
import { isFdOpen } from '../helpers/fds';

const SA = (sa: string): string => `spiffe://cluster.local/ns/default/sa/${sa}`;

function bundle(id: string, serial: string, rootsPem = ['r'], notAfter = new Date(2e12)): CertBundle {
  return { spiffeId: id, keyPem: 'k', chainPem: ['c'], rootsPem, serial, notBefore: new Date(0), notAfter };
}

describe('xDS state for worker threads', () => {
  it('inbound policies survive the structured clone: the worker decides exactly as the main thread', () => {
    const policy: InboundPolicy = {
      mtlsMode: 'STRICT',
      deny: [compilePolicy('default.deny-other', [{ name: 'r0', permissions: [{ kind: 'any' }], principals: [{ kind: 'principal', match: { kind: 'exact', value: SA('other') } }] }])],
      allow: [compilePolicy('default.web', [{ name: 'r0', permissions: [{ kind: 'portRange', start: 8000, end: 9000 }], principals: [{ kind: 'namespace', match: { kind: 'exact', value: 'default' } }] }])],
    };
    const res: AgentResource = { kind: 'inbound', node: 'node-a', workloads: [], policies: new Map([['10.1.0.7', policy]]) };
    const copy = fromWire(structuredClone(toWire(res)));
    assert.equal(copy.kind, 'inbound');
    const p2 = (copy as Extract<AgentResource, { kind: 'inbound' }>).policies.get('10.1.0.7')!;
    for (const principal of [SA('client'), SA('other'), null, 'spiffe://cluster.local/ns/prod/sa/x']) {
      for (const destinationPort of [80, 8080, 9000]) {
        const req = { principal, sourceIp: '10.1.0.5', destinationPort };
        assert.deepEqual(authorize(p2, req), authorize(policy, req), `${principal} -> ${destinationPort}`);
      }
    }
    assert.equal(authorize(p2, { principal: SA('client'), sourceIp: '10.1.0.5', destinationPort: 8080 }).allowed, true);
  });
});

describe('IdentityReplica', () => {
  it('waiters get the first bundle; every issuance calls back; a failure rejects waiters until an issuance clears it', async () => {
    const rotated: string[] = [];
    const r = new IdentityReplica((id) => rotated.push(id));
    const waiting = r.certFor(SA('a'));
    r.update(SA('a'), bundle(SA('a'), '1', ['root-1']), ['root-1']);
    assert.equal((await waiting).serial, '1');
    assert.deepEqual(rotated, [SA('a')], 'the first issuance is announced too (a 15008 that waited through a failure starts on it)');
    r.update(SA('a'), bundle(SA('a'), '2', ['root-1', 'root-2']), ['root-1', 'root-2']);
    assert.deepEqual(rotated, [SA('a'), SA('a')]);
    assert.equal(r.current(SA('a'))!.serial, '2');

    const failing = r.certFor(SA('b'));
    r.fail(SA('b'), 'CA refused: not scheduled on this node');
    await assert.rejects(failing, /CA refused/);
    await assert.rejects(r.certFor(SA('b')), /CA refused/);
    r.update(SA('b'), bundle(SA('b'), '7', ['root-2']), ['root-2']);
    assert.equal((await r.certFor(SA('b'))).serial, '7');
    r.fail(SA('b'), 'late failure');
    assert.equal(r.current(SA('b'))!.serial, '7', 'a failed renewal keeps a valid bundle in use');
    assert.deepEqual(r.trustBundle().sort(), ['root-1', 'root-2'], 'the roots of every bundle, whatever order they came in');

    const orphan = r.certFor(SA('c'));
    r.forget(SA('c'));
    await assert.rejects(orphan, /no longer used/);
  });

  it('an expired bundle is not presented: certFor waits for the renewal, or rejects once it failed', async () => {
    let now = 1_000;
    const r = new IdentityReplica(undefined, () => now);
    r.update(SA('a'), bundle(SA('a'), '1', ['r'], new Date(2_000)), ['r']);
    assert.equal(r.current(SA('a'))!.serial, '1');
    now = 2_000;
    assert.equal(r.current(SA('a')), null, 'expired');
    const renewal = r.certFor(SA('a'));
    r.update(SA('a'), bundle(SA('a'), '2', ['r'], new Date(9_000)), ['r']);
    assert.equal((await renewal).serial, '2');
    now = 9_000;
    r.fail(SA('a'), 'CA unreachable');
    await assert.rejects(r.certFor(SA('a')), /CA unreachable/);
  });
});

/** Workers running test/helpers/scripted-worker (or another stand-in) instead of the real worker. */
function scriptedWorkers(o: { count: number; registry: Registry; restartDelayMs: number; stallTimeoutMs?: number; entry?: string }): DataPlaneWorkers {
  return new DataPlaneWorkers({
    ...o,
    log: silentLogger(),
    logLevel: () => 'info',
    datapath: { tupleDstPin: '/nonexistent', ownFlowsPin: '/nonexistent' },
    mesh: null,
    entry: path.resolve(__dirname, '../helpers', o.entry ?? 'scripted-worker.js'),
  });
}

describe('DataPlaneWorkers supervision', () => {
  it('a crashed worker restarts with the config, identities and pods replayed, and the restart is counted', async () => {
    const registry = new Registry();
    let shares = 0;
    const dp = {
      shareWithWorker: () => ({ uid: 'p1', netnsFd: 100 + ++shares, netnsCookie: 1n, ipv6: false, transparent: { 4: false, 6: false }, listeners: { outbound: [], inbound: [], hbone: [] } }),
    } as unknown as PodDatapath;
    // (fake fd numbers: every share here reaches the scripted worker, which acknowledges it, so none is closed)
    const workers = scriptedWorkers({ count: 2, registry, restartDelayMs: 50 });
    await workers.start();
    try {
      workers.applyResources('type.googleapis.com/envoy.config.cluster.v3.Cluster', []);
      workers.identityIssued(SA('a'), bundle(SA('a'), '1'), ['r']);
      workers.identityIssued(SA('a'), bundle(SA('a'), '1'), ['r']);
      workers.identityFailed(SA('gone'), 'the pod left before its certificate came');
      workers.identityWanted(SA('gone'));
      workers.addPod({ uid: 'p1' } as Workload, dp, () => false);
      const received = async (): Promise<string[][]> => (await workers.stats()).map((s) => (s as unknown as { received: string[] }).received);
      await waitFor('both workers to have the pod', async () => (await received()).every((r) => r.length === 5));
      assert.deepEqual(await received(), [
        ['xds type.googleapis.com/envoy.config.cluster.v3.Cluster 0', 'identity', 'identity-failed', 'identity-forget', 'pod-add p1 netns=101'],
        ['xds type.googleapis.com/envoy.config.cluster.v3.Cluster 0', 'identity', 'identity-failed', 'identity-forget', 'pod-add p1 netns=102'],
      ], 'each worker gets its own copies of the fds; an unchanged certificate is not sent twice');

      workers.setLogLevel('crash');
      await waitFor('both workers to restart', async () => workers.status().every((s) => s.restarts === 1 && s.state === 'running'), 5000);
      await waitFor('the state to be replayed', async () => (await received()).every((r) => r.length === 3));
      // the stale failure of SA('gone') is not replayed: it was withdrawn
      const replayed = await received();
      assert.deepEqual(replayed.map((r) => r.slice(0, 2)), [['xds type.googleapis.com/envoy.config.cluster.v3.Cluster 0', 'identity'], ['xds type.googleapis.com/envoy.config.cluster.v3.Cluster 0', 'identity']]);
      assert.ok(replayed.every((r) => /^pod-add p1 netns=10[3-4]$/.test(r[2]!)), `fresh fd copies after the restart: ${JSON.stringify(replayed)}`);
      assert.deepEqual((await registry.getSingleMetric('nodemesh_worker_restarts_total')!.get()).values.map((v) => [v.labels, v.value]), [[{ reason: 'crashed' }, 2], [{ reason: 'stalled' }, 0]]);

      workers.removePod('p1');
      assert.equal(await workers.drain(1000), 10, 'drain answers from both workers (5 messages each since the restart: xds, identity, pod-add, pod-remove, stop)');
      assert.deepEqual(workers.status().map((s) => s.state), ['stopped', 'stopped']);
    } finally {
      await workers.drain(100);
    }
  });

  it('a worker whose event loop stops running is terminated and restarted; a busy main thread is not mistaken for it', async () => {
    const registry = new Registry();
    const workers = scriptedWorkers({ count: 2, registry, restartDelayMs: 50, stallTimeoutMs: 1000 });
    await workers.start();
    try {
      const metric = async (name: string): Promise<unknown[]> => (await registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels, v.value]);
      // The main thread blocked for longer than the timeout: the workers kept beating, nothing is terminated.
      const until = Date.now() + 1500;
      while (Date.now() < until);
      await new Promise((r) => setTimeout(r, 1200));
      assert.deepEqual(workers.status().map((s) => [s.state, s.restarts]), [['running', 0], ['running', 0]]);

      const before = workers.status()[0]!.threadId;
      workers.setLogLevel('hang'); // both workers spin forever
      await waitFor('both workers to be terminated and restarted', async () => workers.status().every((s) => s.restarts === 1 && s.state === 'running'), 8000);
      assert.notEqual(workers.status()[0]!.threadId, before);
      assert.deepEqual(await metric('nodemesh_worker_stalls_total'), [[{}, 2]]);
      assert.deepEqual(await metric('nodemesh_worker_restarts_total'), [[{ reason: 'crashed' }, 0], [{ reason: 'stalled' }, 2]]);
      assert.equal((await workers.stats()).length, 2, 'the restarted workers answer');

      workers.setLogLevel('crash');
      await waitFor('both workers to restart after crashing', async () => workers.status().every((s) => s.restarts === 2 && s.state === 'running'), 8000);
      assert.deepEqual(await metric('nodemesh_worker_restarts_total'), [[{ reason: 'crashed' }, 2], [{ reason: 'stalled' }, 2]]);
    } finally {
      await workers.drain(100);
    }
  });

  it('a worker stuck before it is ready is terminated too: start() fails instead of waiting forever', { timeout: 15_000 }, async () => {
    const registry = new Registry();
    const workers = scriptedWorkers({ count: 1, registry, restartDelayMs: 60_000, stallTimeoutMs: 1000, entry: 'hung-worker.js' });
    try {
      const t0 = Date.now();
      await assert.rejects(workers.start(), /before it was ready/);
      assert.ok(Date.now() - t0 < 5000, `given twice the stall timeout, not more (${Date.now() - t0} ms)`);
      assert.equal(workers.status()[0]!.state, 'restarting');
      assert.match(workers.status()[0]!.lastExit ?? '', /^not ready after 2(\.\d)? s$/);
      assert.equal((await registry.getSingleMetric('nodemesh_worker_stalls_total')!.get()).values[0]!.value, 1);
    } finally {
      await workers.drain(100);
    }
  });

  it('fds of a pod shared with a worker that died before receiving it are closed; those it received are its own', async () => {
    const opened: number[] = [];
    const dp = (uid: string): PodDatapath =>
      ({
        shareWithWorker: () => {
          const fd = (): number => {
            opened.push(fs.openSync('/dev/null', 'r'));
            return opened[opened.length - 1]!;
          };
          return { uid, netnsFd: fd(), netnsCookie: 1n, ipv6: false, listeners: { outbound: [fd()], inbound: [fd()], hbone: [] } };
        },
      }) as unknown as PodDatapath;
    const workers = scriptedWorkers({ count: 1, registry: new Registry(), restartDelayMs: 60_000 });
    await workers.start();
    try {
      workers.addPod({ uid: 'p1' } as Workload, dp('p1'), () => false);
      await waitFor('p1 to be received', async () => (await workers.stats()).length === 1 && ((await workers.stats())[0] as unknown as { received: string[] }).received.length === 1);
      const [p1, p2] = [opened.slice(0, 3), opened.slice(3, 6)];
      workers.setLogLevel('crash');
      workers.addPod({ uid: 'p2' } as Workload, dp('p2'), () => false);
      await waitFor('the worker to exit', async () => workers.status()[0]!.state === 'restarting', 5000);
      assert.deepEqual(p1.map(isFdOpen), [true, true, true], 'what the worker received is not closed twice');
      assert.equal(opened.length, 6);
      assert.deepEqual(opened.slice(3).map(isFdOpen), [false, false, false], `the share it never received is closed (${p2.join(',')})`);
    } finally {
      await workers.drain(100);
      for (const fd of opened.slice(0, 3)) fs.closeSync(fd);
    }
  });
});
