// Agents with a data-plane worker thread (--concurrency 2): connections land on both threads, over mTLS;
// metrics sum the threads; policy pushes and certificate rotations reach the worker; unenrolling closes the
// worker's copies of the listeners; SIGTERM drains the worker's connections too, and a restart serves from both again.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unixRequest } from '../../src/enroll/client';
import type { LabState } from '../../src/lab';
import { killAgent, startAgent } from '../../src/lab/agent-control';
import { configDir } from '../../src/lab/controlplane';
import { enrollSocket } from '../../src/lab/paths';
import { admin, down, execInPod, isRoot, metricSum, PUMP_MANY, podIP, podYaml, SLOW_PUMP, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const CERT_VALIDITY_S = 6;
const BATCH = 24;

const pod = (name: string, node: string, sa: string, command: string[]): string => podYaml({ name, node, serviceAccount: sa, app: name, command });

const MANIFEST = [
  pod('client', 'node-a', 'client', ['sleep', 'infinity']),
  pod('echo-b', 'node-b', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
  pod('spare-b', 'node-b', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
].join('\n');

interface Conn {
  thread: number;
  direction: string;
  dst: string;
}

interface ActiveConn {
  thread: number;
  dst: { ip: string; port: number };
}

describe('agents with a data-plane worker thread', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('cc');
  let state: LabState;
  let pumped = 0;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST, { agentArgs: ['--concurrency', '2', '--cert-validity', String(CERT_VALIDITY_S)] });
  });
  after(async () => {
    await down(lab);
  });

  async function pumpMany(to: string, n: number): Promise<{ connections: number; intact: number; failures: string[] }> {
    const r = await execInPod(lab, 'client', [process.execPath, PUMP_MANY, podIP(state, to), '9000', String(n), '4096']);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  }
  const recent = async (node: string): Promise<Conn[]> => (JSON.parse(await admin(lab, node, '/connections')) as { recent: Conn[] }).recent;
  const threadsServing = (conns: Conn[], direction: string, dst: string): Set<number> =>
    new Set(conns.filter((c) => c.direction === direction && c.dst.startsWith(dst)).map((c) => c.thread));

  it('1. connections land on both threads of both agents, all over mTLS, and /metrics counts each exactly once', async () => {
    const echoB = podIP(state, 'echo-b');
    for (const n of ['node-a', 'node-b']) {
      const workers = JSON.parse(await admin(lab, n, '/config_dump')).workers as { index: number; state: string; restarts: number; answering: boolean }[];
      assert.deepEqual(workers.map((w) => [w.index, w.state, w.restarts, w.answering]), [[1, 'running', 0, true]], `${n}: one worker thread, running and answering`);
    }
    // Which thread accepts is the kernel's and the event loops' business: pump batches until both have served.
    for (let round = 0; round < 8; round++) {
      const r = await pumpMany('echo-b', BATCH);
      assert.equal(r.intact, BATCH, JSON.stringify(r));
      pumped += BATCH;
      const out = threadsServing(await recent('node-a'), 'outbound', echoB);
      const inb = threadsServing(await recent('node-b'), 'inbound', echoB);
      if (out.size === 2 && inb.size === 2) break;
    }
    assert.deepEqual([...threadsServing(await recent('node-a'), 'outbound', echoB)].sort(), [0, 1], 'node-a: outbound on the main thread and the worker');
    assert.deepEqual([...threadsServing(await recent('node-b'), 'inbound', echoB)].sort(), [0, 1], 'node-b: inbound on the main thread and the worker');
    const mB = await admin(lab, 'node-b', '/metrics');
    assert.equal(
      metricSum(mB, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'echo-b', connection_security_policy: 'mutual_tls' }),
      pumped,
      'every connection counted once, summed over the threads',
    );
    assert.equal(metricSum(mB, 'istio_tcp_connections_opened_total', { destination_workload: 'echo-b', connection_security_policy: 'none' }), 0, 'none in plaintext');
    const mA = await admin(lab, 'node-a', '/metrics');
    assert.equal(metricSum(mA, 'istio_tcp_connections_opened_total', { reporter: 'source', destination_workload: 'echo-b' }), pumped);
    assert.ok(metricSum(mA, 'nodemesh_hbone_client_sessions_opened_total') >= 2, 'each thread dials its own HBONE sessions');
    assert.equal(metricSum(mA, 'nodemesh_worker_restarts_total'), 0);
  });

  it('2. a DENY policy reaches the worker: every connection is refused, whichever thread accepts it; removing it admits them again', async () => {
    const file = path.join(configDir(lab), 'deny-client.yaml');
    fs.writeFileSync(
      file,
      `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-client, namespace: default }\nspec:\n  selector: { matchLabels: { app: echo-b } }\n  action: DENY\n  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }] }]\n`,
    );
    const denied = async (): Promise<number> =>
      metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_tcp_connections_opened_total', { destination_workload: 'echo-b', response_flags: 'DENY' });
    await waitFor('the policy to apply', async () => (await pumpMany('echo-b', 1)).intact === 0);
    const before = await denied();
    const r = await pumpMany('echo-b', BATCH);
    assert.equal(r.intact, 0, `all refused: ${JSON.stringify(r)}`);
    await waitFor('every refusal to be counted', async () => (await denied()) - before === BATCH);
    fs.rmSync(file);
    await waitFor('the policy to be gone', async () => (await pumpMany('echo-b', 1)).intact === 1);
    assert.equal((await pumpMany('echo-b', BATCH)).intact, BATCH);
  });

  it('3. certificates rotate on both threads: new connections keep working across several lifetimes', async () => {
    const serials = new Set<string>();
    const deadline = Date.now() + 2.5 * CERT_VALIDITY_S * 1000;
    while (Date.now() < deadline) {
      const r = await pumpMany('echo-b', 8);
      assert.equal(r.intact, 8, JSON.stringify(r));
      const ids = JSON.parse(await admin(lab, 'node-a', '/config_dump')).mesh.identities as { spiffeId: string; serial: string }[];
      for (const i of ids) serials.add(i.serial);
      await new Promise((res) => setTimeout(res, 1000));
    }
    assert.ok(serials.size >= 3, `the client identity rotated at least twice (serials seen: ${serials.size})`);
  });

  it('4. unenrolling a pod closes every thread\'s copy of its listeners', async () => {
    const spare = state.pods.find((p) => p.name === 'spare-b')!;
    const listening = async (): Promise<string> => (await execInPod(lab, 'spare-b', ['ss', '-ltnH'])).stdout;
    assert.match(await listening(), /:15001\b/);
    const res = await unixRequest(enrollSocket(lab, 'node-b'), 'DELETE', `/v1/pods/${spare.uid}`);
    assert.equal(res.status, 200, res.body);
    await waitFor('the agent ports to stop listening in the pod', async () => !/:1500[168]\b/.test(await listening()), 5000);
    assert.match(await listening(), /:9000\b/, 'the application still listens');
  });

  it('5. SIGTERM: connections open on both threads finish during the drain, then the agent exits by itself', async () => {
    const echoB = podIP(state, 'echo-b');
    const active = async (): Promise<ActiveConn[]> => (JSON.parse(await admin(lab, 'node-a', '/connections')) as { active: ActiveConn[] }).active;
    // Batches of paused transfers (each ends 4 s after it starts, within the 5 s drain) until both threads hold some.
    const slow: ReturnType<typeof execInPod>[] = [];
    for (let batch = 0; batch < 10; batch++) {
      slow.push(...Array.from({ length: 4 }, () => execInPod(lab, 'client', [process.execPath, SLOW_PUMP, echoB, '9000', '4000'])));
      await waitFor('the batch to be open', async () => (await active()).filter((c) => c.dst.ip === echoB).length >= 4);
      if (new Set((await active()).map((c) => c.thread)).size === 2) break;
    }
    assert.equal(new Set((await active()).map((c) => c.thread)).size, 2, 'open connections on both of node-a\'s threads');
    await killAgent(lab, 'node-a', 'SIGTERM');
    for (const r of await Promise.all(slow)) assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('6. a restarted agent re-enrolls its pods on both threads', async () => {
    await startAgent(lab, 'node-a');
    const echoB = podIP(state, 'echo-b');
    for (let round = 0; round < 8 && threadsServing(await recent('node-a'), 'outbound', echoB).size < 2; round++) {
      const r = await pumpMany('echo-b', BATCH);
      assert.equal(r.intact, BATCH, JSON.stringify(r));
    }
    assert.deepEqual([...threadsServing(await recent('node-a'), 'outbound', echoB)].sort(), [0, 1]);
  });
});
