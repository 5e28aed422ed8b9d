// e2e (root): the real data-plane worker serving a real pod's listeners (no main-thread server) crashes, or
// its event loop stalls and the watchdog terminates it. Either way it is restarted and serves again, a
// connection queued meanwhile is served by the new worker, and no fd of the pod (netns, listener copies,
// pooled sockets) outlives the dead worker.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { DataPlaneWorkers } from '../../src/agent/workers';
import { openDatapath } from '../../src/datapath/datapath';
import { loadNative } from '../../src/datapath/native';
import type { Datapath, PodDatapath } from '../../src/datapath/types';
import type { Workload } from '../../src/state/workloads';
import { silentLogger } from '../../src/telemetry/logger';
import { CLIENT_JS, createTestNet, e2eSkipReason, firstLine, serverJs, type TestNet } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const skip = e2eSkipReason();
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const PORT = 8080;
/** The tests' client, waiting long enough for a worker to be restarted. */
const PATIENT_CLIENT_JS = CLIENT_JS.replace('setTimeout(5000', 'setTimeout(20000');

describe('data-plane worker faults', { skip: skip ?? false }, () => {
  let t: TestNet;
  let dp: Datapath;
  let pod: PodDatapath;
  let workers: DataPlaneWorkers | null = null;
  let netnsIno: bigint;
  const native = loadNative();

  before(async () => {
    t = createTestNet();
    dp = await openDatapath({ pinRoot: t.pinRoot, cgroupRoot: t.cgroup }, quiet);
    pod = await dp.enroll({ uid: `a-${t.tag}`, netnsPath: t.a.path, ips: [t.a.ip], failClosed: false });
    netnsIno = fs.statSync(t.a.path, { bigint: true }).ino;
    assert.equal(await firstLine(t.spawnIn(t.b, ['node', '-e', serverJs(t.b.ip, PORT, 'hello')])), 'ready');
  });

  after(async () => {
    try {
      // bounded: a worker whose teardown hangs must not keep the namespaces below from being removed
      if (workers) await Promise.race([workers.drain(500), new Promise((r) => setTimeout(r, 5000).unref())]);
      const l = pod?.listeners;
      // the main thread never served them: close its own copies
      for (const fd of l ? [l.outbound4, l.outbound6, l.inbound4, l.inbound6] : []) if (fd !== null) fs.closeSync(fd);
      await dp?.close({ detach: true });
    } finally {
      t?.destroy();
    }
  });

  /** This process's fds on the pod: its netns, and sockets made inside it (listeners, pooled sockets). */
  function podFds(): { netns: number; sockets: number } {
    const n = { netns: 0, sockets: 0 };
    for (const name of fs.readdirSync('/proc/self/fd')) {
      const fd = Number(name);
      let link: string;
      try {
        link = fs.readlinkSync(path.join('/proc/self/fd', name));
      } catch {
        continue; // the directory's own fd, or closed meanwhile
      }
      if ((link === t.a.path || link.startsWith('net:[')) && native.fdInode(fd) === netnsIno) n.netns++;
      if (link.startsWith('socket:[')) {
        try {
          if (native.socketNetnsCookie(fd) === pod.netnsCookie) n.sockets++;
        } catch {
          // not an inet socket
        }
      }
    }
    return n;
  }

  /** A client in the pod (its cgroup: redirected to the pod's listener) through to the server in netns b. */
  const dial = async (): Promise<unknown> => JSON.parse(await firstLine(t.spawnIn(t.a, ['node', '-e', PATIENT_CLIENT_JS, t.b.ip, String(PORT)], { inCgroup: true }), 25_000));

  test('a crashed or stalled worker restarts and serves again; what it held is closed, a queued connection is served', async () => {
    const workload: Workload = { uid: pod.uid, name: 'a', namespace: 'default', serviceAccount: 'default', ips: [t.a.ip], labels: {}, annotations: {}, workloadName: 'a' };
    const registry = new Registry();
    workers = new DataPlaneWorkers({
      count: 1,
      log: silentLogger(),
      registry,
      logLevel: () => 'silent',
      datapath: dp.workerShare!()!,
      mesh: null,
      restartDelayMs: 1500,
      stallTimeoutMs: 1000,
      entry: path.resolve(__dirname, '../helpers/faulty-worker.js'),
    });
    await workers.start();
    const alone = podFds(); // the main thread's own: netns fd, listeners, its socket pool
    workers.addPod(workload, pod, () => false);
    assert.deepEqual(await dial(), { ok: true, data: 'hello' }, 'the worker serves the pod (nothing else accepts on its listeners)');
    const served = podFds();
    assert.equal(served.netns, alone.netns + 1, 'the worker holds its own netns fd');
    assert.ok(served.sockets > alone.sockets + 2, `the worker holds listener copies and pooled sockets (${alone.sockets} -> ${served.sockets})`);

    for (const [fault, restarts] of [['crash', 1], ['hang', 2]] as const) {
      workers.setLogLevel(fault);
      await waitFor(`the ${fault} to end the worker`, async () => workers!.status()[0]!.state === 'restarting', 10_000);
      assert.deepEqual(podFds(), alone, `after the ${fault}, nothing the worker held is left open`);
      // queued on the listener while no thread accepts; the restarted worker takes it
      const queued = dial();
      queued.catch(() => undefined); // awaited below; a failure before that must not be unhandled
      await waitFor(`the worker to restart after the ${fault}`, async () => workers!.status()[0]!.state === 'running' && workers!.status()[0]!.restarts === restarts, 10_000);
      assert.deepEqual(await queued, { ok: true, data: 'hello' }, `the connection made while the worker was down (${fault}) is served`);
    }
    const values = async (name: string): Promise<unknown[]> => (await registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels, v.value]);
    assert.deepEqual(await values('nodemesh_worker_restarts_total'), [[{ reason: 'crashed' }, 1], [{ reason: 'stalled' }, 1]]);
    assert.deepEqual(await values('nodemesh_worker_stalls_total'), [[{}, 1]]);

    // Every raw fd the worker holds leaves its ledger through a handle or a close: none is left once the pod is
    // gone (a path that forgot to would leave the ledger closing a number another thread may own by then).
    const held = async (): Promise<number> => (await workers!.stats())[0]!.heldFds;
    assert.ok((await held()) >= 2, 'while serving: the netns fd and pooled sockets');
    workers.removePod(pod.uid);
    await waitFor('the worker to let go of the pod', async () => (await held()) === 0, 5000);
    // the last relayed connection (client side and upstream, both in the pod's netns) may still be closing
    const same = (a: { netns: number; sockets: number }): boolean => a.netns === alone.netns && a.sockets === alone.sockets;
    await waitFor('the last relayed connection to close', async () => same(podFds()), 5000).catch(() => undefined);
    assert.deepEqual(podFds(), alone, 'and it closed all of them');
  });
});
