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

const pod = (name: string, node: string, sa: string, command: string[], annotations?: string): string =>
  podYaml({ name, node, serviceAccount: sa, app: name, command, annotations });

// Outbound, each connection is accepted on its own, by whichever thread gets there first. Inbound over HBONE,
// a thread accepts a session and serves every tunnel in it, so node-b's threads are exercised per connection
// by plaintext from a pod outside the mesh (legacy-a), and over HBONE by the new sessions rotations bring.
const MANIFEST = [
  pod('client', 'node-a', 'client', ['sleep', 'infinity']),
  pod('legacy-a', 'node-a', 'legacy', ['sleep', 'infinity'], 'nodemesh.io/enroll: "false"'),
  pod('echo-b', 'node-b', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
  pod('spare-b', 'node-b', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
].join('\n');

interface Conn {
  thread: number;
  direction: string;
  src: string;
  dst: string;
  responseFlags: string;
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

  async function pumpMany(to: string, n: number, from = 'client'): Promise<{ connections: number; intact: number; failures: string[] }> {
    const r = await execInPod(lab, from, [process.execPath, PUMP_MANY, podIP(state, to), '9000', String(n), '4096']);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  }
  const recent = async (node: string): Promise<Conn[]> => (JSON.parse(await admin(lab, node, '/connections')) as { recent: Conn[] }).recent;
  const threadsServing = (conns: Conn[], direction: string, dst: string, fromIp?: string): Set<number> =>
    new Set(conns.filter((c) => c.direction === direction && c.dst.startsWith(`${dst}:`) && (!fromIp || c.src.startsWith(`${fromIp}:`))).map((c) => c.thread));

  it('1. connections land on both threads of both agents, and /metrics counts each exactly once', async () => {
    const echoB = podIP(state, 'echo-b');
    for (const n of ['node-a', 'node-b']) {
      const workers = JSON.parse(await admin(lab, n, '/config_dump')).workers as { index: number; state: string; restarts: number; answering: boolean }[];
      assert.deepEqual(workers.map((w) => [w.index, w.state, w.restarts, w.answering]), [[1, 'running', 0, true]], `${n}: one worker thread, running and answering`);
    }
    // Which thread accepts is the kernel's and the event loops' business: pump batches until both have served.
    let plain = 0;
    for (let round = 0; round < 16; round++) {
      const r = await pumpMany('echo-b', BATCH);
      assert.equal(r.intact, BATCH, JSON.stringify(r));
      pumped += BATCH;
      const l = await pumpMany('echo-b', BATCH, 'legacy-a');
      assert.equal(l.intact, BATCH, JSON.stringify(l));
      plain += BATCH;
      const out = threadsServing(await recent('node-a'), 'outbound', echoB);
      const inb = threadsServing(await recent('node-b'), 'inbound', echoB, podIP(state, 'legacy-a'));
      if (out.size === 2 && inb.size === 2) break;
    }
    assert.deepEqual([...threadsServing(await recent('node-a'), 'outbound', echoB)].sort(), [0, 1], 'node-a: outbound on the main thread and the worker');
    assert.deepEqual([...threadsServing(await recent('node-b'), 'inbound', echoB, podIP(state, 'legacy-a'))].sort(), [0, 1], 'node-b: inbound on the main thread and the worker');
    const mB = await admin(lab, 'node-b', '/metrics');
    assert.equal(
      metricSum(mB, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'echo-b', connection_security_policy: 'mutual_tls' }),
      pumped,
      'every mesh connection counted once, over mTLS, whichever thread served it',
    );
    assert.equal(metricSum(mB, 'istio_tcp_connections_opened_total', { destination_workload: 'echo-b', connection_security_policy: 'none' }), plain, 'and each plaintext one');
    const mA = await admin(lab, 'node-a', '/metrics');
    assert.equal(metricSum(mA, 'istio_tcp_connections_opened_total', { reporter: 'source', destination_workload: 'echo-b' }), pumped);
    assert.ok(metricSum(mA, 'nodemesh_hbone_client_sessions_opened_total') >= 2, 'each thread dials its own HBONE sessions');
    assert.equal(metricSum(mA, 'nodemesh_worker_restarts_total'), 0);
  });

  it('2. a DENY policy reaches the worker: every connection is refused, whichever thread accepts it; removing it admits them again', async () => {
    const file = path.join(configDir(lab), 'deny.yaml');
    const legacyA = podIP(state, 'legacy-a');
    fs.writeFileSync(
      file,
      `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny, namespace: default }\nspec:\n  selector: { matchLabels: { app: echo-b } }\n  action: DENY\n  rules:\n    - from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }]\n    - from: [{ source: { ipBlocks: ["${legacyA}/32"] } }]\n`,
    );
    const denied = async (): Promise<number> =>
      metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_tcp_connections_opened_total', { destination_workload: 'echo-b', response_flags: 'DENY' });
    try {
      await waitFor('the policy to apply', async () => (await pumpMany('echo-b', 1)).intact === 0 && (await pumpMany('echo-b', 1, 'legacy-a')).intact === 0);
      const before = await denied();
      const mesh = await pumpMany('echo-b', BATCH);
      assert.equal(mesh.intact, 0, `all mesh connections refused: ${JSON.stringify(mesh)}`);
      let refused = BATCH;
      // plaintext connections are accepted one by one by either of node-b's threads: batches until both refused some
      const refusedBy = (): Promise<Set<number>> =>
        recent('node-b').then((conns) => threadsServing(conns.filter((c) => c.responseFlags === 'DENY'), 'inbound', podIP(state, 'echo-b'), legacyA));
      for (let round = 0; round < 10 && (await refusedBy()).size < 2; round++) {
        const plain = await pumpMany('echo-b', BATCH, 'legacy-a');
        assert.equal(plain.intact, 0, `all plaintext refused: ${JSON.stringify(plain)}`);
        refused += BATCH;
      }
      assert.deepEqual([...(await refusedBy())].sort(), [0, 1], 'both of node-b\'s threads refused plaintext connections');
      await waitFor('every refusal to be counted', async () => (await denied()) - before === refused);
    } finally {
      fs.rmSync(file, { force: true });
    }
    await waitFor('the policy to be gone', async () => (await pumpMany('echo-b', 1)).intact === 1 && (await pumpMany('echo-b', 1, 'legacy-a')).intact === 1);
    assert.equal((await pumpMany('echo-b', BATCH)).intact, BATCH);
    assert.equal((await pumpMany('echo-b', BATCH, 'legacy-a')).intact, BATCH);
  });

  it('3. certificates rotate on both threads: new connections keep working across several lifetimes, and node-b serves HBONE sessions on both', async () => {
    const serials = new Set<string>();
    const hboneThreads = new Set<number>();
    const echoB = podIP(state, 'echo-b');
    const client = podIP(state, 'client');
    // Each client rotation opens new HBONE sessions (the pool keys them by certificate), each accepted by one
    // of node-b's threads: go on past 2.5 lifetimes until both have served some, within 5.
    const start = Date.now();
    const enough = (): boolean => Date.now() - start > 2.5 * CERT_VALIDITY_S * 1000 && hboneThreads.size === 2;
    while (!enough() && Date.now() - start < 5 * CERT_VALIDITY_S * 1000) {
      const r = await pumpMany('echo-b', 8);
      assert.equal(r.intact, 8, JSON.stringify(r));
      const ids = JSON.parse(await admin(lab, 'node-a', '/config_dump')).mesh.identities as { spiffeId: string; serial: string }[];
      for (const i of ids) serials.add(i.serial);
      for (const t of threadsServing(await recent('node-b'), 'inbound', echoB, client)) hboneThreads.add(t);
      await new Promise((res) => setTimeout(res, 1000));
    }
    assert.ok(serials.size >= 3, `the client identity rotated at least twice (serials seen: ${serials.size})`);
    assert.deepEqual([...hboneThreads].sort(), [0, 1], 'node-b served HBONE tunnels on both threads');
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
    for (let round = 0; round < 16 && threadsServing(await recent('node-a'), 'outbound', echoB).size < 2; round++) {
      const r = await pumpMany('echo-b', BATCH);
      assert.equal(r.intact, BATCH, JSON.stringify(r));
    }
    assert.deepEqual([...threadsServing(await recent('node-a'), 'outbound', echoB)].sort(), [0, 1]);
  });
});
