// e2e (root): the agent process is SIGKILLed — traffic fails open at once, and the next agent adopts the hooks.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatapath } from '../../src/datapath/datapath';
import type { Datapath } from '../../src/datapath/types';
import { CLIENT_JS, createTestNet, e2eSkipReason, firstLine, serverJs, type TestNet } from '../helpers/netns';

const skip = e2eSkipReason();
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** A stand-in agent: opens the datapath, enrolls pod A, answers on 15001/15006, prints its pod cookie. */
function agentScript(t: TestNet): string {
  const datapath = path.resolve(__dirname, '../../src/datapath/datapath.js');
  return `
const net = require('net');
const { openDatapath } = require(${JSON.stringify(datapath)});
const q = { info() {}, warn() {}, error() {}, debug() {} };
(async () => {
  const dp = await openDatapath({ pinRoot: ${JSON.stringify(t.pinRoot)}, cgroupRoot: ${JSON.stringify(t.cgroup)} }, q);
  const pod = await dp.enroll({ uid: 'crash-a', netnsPath: ${JSON.stringify(t.a.path)}, ips: [${JSON.stringify(t.a.ip)}], failClosed: false });
  for (const fd of [pod.listeners.outbound4, pod.listeners.inbound4]) net.createServer((s) => s.end('agent')).listen({ fd });
  console.log(JSON.stringify({ cookie: pod.netnsCookie.toString() }));
})().catch((e) => { console.error(e); process.exit(1); });
`;
}

function cgroupProgNames(cg: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cg], { encoding: 'utf8' }).trim();
  return (JSON.parse(out || '[]') as { name: string }[]).map((p) => p.name).sort();
}

describe('agent crash', { skip: skip ?? false }, () => {
  let t: TestNet;
  let agent: ChildProcess | null = null;
  let dp: Datapath | null = null;

  before(async () => {
    t = createTestNet();
    await firstLine(t.spawnIn(t.b, ['node', '-e', serverJs(t.b.ip, 9000, 'B-server')]));
    await firstLine(t.spawnIn(t.a, ['node', '-e', serverJs(t.a.ip, 8081, 'A-app')]));
  });

  after(async () => {
    try {
      if (agent?.pid && agent.exitCode === null && agent.signalCode === null) process.kill(agent.pid, 'SIGKILL');
      if (dp) await dp.close({ detach: true });
    } finally {
      t?.destroy(); // also detaches whatever is still pinned under the test pin root
    }
  });

  const dial = async (from: 'a' | 'b', host: string, port: number): Promise<unknown> =>
    JSON.parse(await firstLine(t.spawnIn(t[from], ['node', '-e', CLIENT_JS, host, String(port)], { inCgroup: true })));

  test('SIGKILL of the agent fails open, and a new agent adopts every hook', async () => {
    const script = path.join(t.tmpDir, 'agent.js');
    fs.writeFileSync(script, agentScript(t));
    agent = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const { cookie } = JSON.parse(await firstLine(agent)) as { cookie: string };

    assert.deepEqual(await dial('a', t.b.ip, 9000), { ok: true, data: 'agent' }, 'outbound captured');
    assert.deepEqual(await dial('b', t.a.ip, 8081), { ok: true, data: 'agent' }, 'inbound captured');

    const exited = new Promise((r) => agent!.once('exit', r));
    process.kill(agent.pid!, 'SIGKILL');
    await exited;

    // listeners died with the process: connect4 finds no 15001 listener, sk_lookup finds no socket
    assert.deepEqual(await dial('a', t.b.ip, 9000), { ok: true, data: 'B-server' }, 'outbound fails open');
    assert.deepEqual(await dial('b', t.a.ip, 8081), { ok: true, data: 'A-app' }, 'inbound fails open');
    assert.deepEqual(cgroupProgNames(t.cgroup), ['nm_sock4_connect', 'nm_sock6_connect', 'nm_sockops']);

    dp = await openDatapath({ pinRoot: t.pinRoot, cgroupRoot: t.cgroup }, quiet);
    assert.ok(dp.status().programs.every((p) => p.adopted));
    assert.deepEqual(cgroupProgNames(t.cgroup), ['nm_sock4_connect', 'nm_sock6_connect', 'nm_sockops']);
    assert.equal(dp.podCounters(BigInt(cookie))!.failOpen, 1n);
    // the new agent has not re-enrolled pod A: reconcile drops it
    assert.ok((await dp.pruneExcept(new Set(), new Set())) >= 2);
    assert.equal(dp.podCounters(BigInt(cookie)), null);
  });
});
