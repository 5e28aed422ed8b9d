// Floods of connections that never finish a TLS handshake (idle, partial ClientHello) from two pods outside
// the mesh against a mesh pod's 15008: the agent closes them, bounds how many it holds, logs a few counted
// lines instead of one per connection, its memory comes back, and mesh traffic is served throughout.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { labDir } from '../../src/lab/paths';
import { AGENT_NODE_FLAGS } from '../../src/lab/up';
import { admin, down, execInPod, isRoot, metricSum, podIP, podYaml, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';
import { testCaFromRoot } from '../helpers/test-ca';

const FLOOD = path.resolve(__dirname, '../helpers/handshake-flood.js');
const HBONE_PROBE = path.resolve(__dirname, '../helpers/hbone-probe.js');
/** Per flooding pod and round; two pods, two rounds. */
const FLOOD_CONNECTIONS = 3000;
/** Longer than the agent's handshake timeout (10 s): every flood connection must be closed by the agent. */
const FLOOD_HOLD_MS = 15_000;
const ROUNDS = 2;

const NOT_IN_MESH = 'nodemesh.io/enroll: "false"';
const MANIFEST = [
  podYaml({ name: 'client', node: 'node-a', serviceAccount: 'client', app: 'client', command: ['sleep', 'infinity'] }),
  podYaml({ name: 'flood-1', node: 'node-a', serviceAccount: 'flood', app: 'flood', command: ['sleep', 'infinity'], annotations: NOT_IN_MESH }),
  podYaml({ name: 'flood-2', node: 'node-a', serviceAccount: 'flood', app: 'flood', command: ['sleep', 'infinity'], annotations: NOT_IN_MESH }),
  podYaml({ name: 'prober', node: 'node-a', serviceAccount: 'prober', app: 'prober', command: ['sleep', 'infinity'], annotations: NOT_IN_MESH }),
  podYaml({ name: 'server', node: 'node-b', serviceAccount: 'server', app: 'server', command: ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'server', '--version', 'v1'] }),
].join('\n');

interface FloodSummary {
  attempted: number;
  opened: number;
  connectErrors: number;
  closedByServer: number;
  heldToEnd: number;
  errors: Record<string, number>;
  ms: number;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

describe('HBONE handshake floods from pods outside the mesh', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('hf');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-flood-'));
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('1. idle and partial-ClientHello floods are closed and bounded; RSS returns to within 20 % of its pre-flood value; mesh traffic is served throughout', async (t) => {
    const nodeB = state.nodes.find((n) => n.name === 'node-b')!;
    const agentPid = nodeB.agent!.pid;
    const cmdline = fs.readFileSync(`/proc/${agentPid}/cmdline`, 'utf8').split('\0');
    for (const flag of AGENT_NODE_FLAGS) assert.ok(cmdline.includes(flag), `the agent runs with the lab's V8 flag ${flag}: ${cmdline.join(' ')}`);
    const server = podIP(state, 'server');
    const url = `http://${server}:8080/`;

    // Fresh handshakes from a third address with a valid mesh certificate: a new session each time, not the pool's.
    const meshCa = testCaFromRoot(fs.readFileSync(path.join(labDir(lab), 'ca', 'root-cert.pem'), 'utf8'), fs.readFileSync(path.join(labDir(lab), 'ca', 'root-key.pem'), 'utf8'));
    const valid = meshCa.issue({ spiffeId: 'spiffe://cluster.local/ns/default/sa/prober' });
    const probeFile = path.join(tmp, 'probe.json');
    fs.writeFileSync(probeFile, JSON.stringify({ address: server, port: 15008, authority: `${server}:8080`, rootsPem: [meshCa.rootPem], keyPem: valid.keyPem, chainPem: valid.chainPem }));
    const probe = async (): Promise<{ ok: boolean; status?: number; error?: string }> => {
      const r = await execInPod(lab, 'prober', [process.execPath, HBONE_PROBE, probeFile]);
      return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    };
    const requests = async (count: number): Promise<{ ok: number; failed: string[] }> => {
      const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, '--count', String(count), '--new-connections', '--timeout', '5000']);
      const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { ok: boolean; error?: string; status?: number });
      return { ok: lines.filter((l) => l.ok).length, failed: lines.filter((l) => !l.ok).map((l) => l.error ?? String(l.status)).concat(r.code === 0 ? [] : [`exit ${r.code}: ${r.stderr.slice(-300)}`]) };
    };

    // Warm up (sessions, certificates, JIT), then the steady value: the median of samples over a few seconds.
    for (let i = 0; i < 3; i++) assert.equal((await requests(50)).failed.length, 0);
    assert.deepEqual(await probe(), { ok: true, status: 200 }, 'control: a fresh handshake with a mesh certificate is served');
    await sleep(2000);
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      samples.push(rssKb(agentPid));
      await sleep(300);
    }
    const pre = samples.sort((a, b) => a - b)[samples.length >> 1]!;

    let peak = pre;
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        peak = Math.max(peak, rssKb(agentPid));
        await sleep(200);
      }
    })();
    // Mesh traffic while the floods run: pooled sessions (client → server) and fresh handshakes (prober).
    let served = 0;
    const failures: string[] = [];
    const probes: { ok: boolean; error?: string }[] = [];
    const traffic = (async () => {
      while (flooding) {
        const r = await requests(20);
        served += r.ok;
        failures.push(...r.failed);
        probes.push(await probe());
      }
    })();

    const floods: FloodSummary[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const runs = (['flood-1', 'flood-2'] as const).map(async (pod, i) => {
        const r = await execInPod(lab, pod, [process.execPath, FLOOD, server, '15008', String(FLOOD_CONNECTIONS), i === 0 ? 'idle' : 'partial', String(FLOOD_HOLD_MS)], 120_000);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as FloodSummary;
      });
      floods.push(...(await Promise.all(runs)));
    }
    flooding = false;
    const floodsEnded = fs.readFileSync(nodeB.agentLog, 'utf8').split('\n').length - 1;
    await Promise.all([sampler, traffic]);

    // After the floods: the agent sees the burst is over (none in progress, none new for a while) and hands the
    // memory it left back; then its RSS is compared with the value before.
    const metrics = await admin(lab, 'node-b', '/metrics');
    const agentLog = (): string[] => fs.readFileSync(nodeB.agentLog, 'utf8').split('\n');
    const over = await waitFor('the agent to see the burst over', async () => agentLog().slice(floodsEnded).find((l) => l.includes("a burst of connections to pods' 15008 is over")), 30_000);
    const after: number[] = [];
    for (let i = 0; i < 5; i++) {
      after.push(rssKb(agentPid));
      await sleep(300);
    }
    const post = after.sort((a, b) => a - b)[after.length >> 1]!;
    const refusedLines = agentLog().filter((l) => l.includes('HBONE handshake')).length;
    t.diagnostic(`agent: ${over}`);
    t.diagnostic(`agent RSS pre-flood ${mb(pre)}, peak ${mb(peak)}, post-flood ${mb(post)} (${((post / pre - 1) * 100).toFixed(1)} %)`);
    t.diagnostic(`floods: ${JSON.stringify(floods)}`);
    t.diagnostic(`mesh requests served during the floods: ${served}, failed: ${failures.length}; fresh handshakes: ${probes.filter((p) => p.ok).length}/${probes.length}`);
    t.diagnostic(`agent log lines about HBONE handshakes: ${refusedLines}`);

    for (const f of floods) {
      assert.equal(f.heldToEnd, 0, `every flood connection was closed by the agent before the flood let go of it: ${JSON.stringify(f)}`);
      assert.ok(f.opened > 0, JSON.stringify(f));
    }
    assert.ok(metricSum(metrics, 'nodemesh_hbone_server_handshakes_rejected_total', { pod: 'server' }) > 0, 'connections over the bounds were refused and counted');
    assert.ok(metricSum(metrics, 'nodemesh_hbone_server_handshake_failures_total', { pod: 'server' }) > 0, 'timed-out handshakes are counted');
    await waitFor('no handshake left in progress', async () => metricSum(await admin(lab, 'node-b', '/metrics'), 'nodemesh_hbone_server_handshakes_in_progress', { pod: 'server' }) === 0);
    assert.ok(refusedLines < 50, `refusals are logged as a few counted lines, not one per connection (${refusedLines})`);
    assert.ok(served > 0, 'mesh requests ran during the floods');
    assert.deepEqual(failures, [], 'every mesh request during the floods succeeded');
    assert.ok(probes.length > 0 && probes.every((p) => p.ok), `every fresh mesh handshake during the floods succeeded: ${JSON.stringify(probes)}`);
    assert.ok(post <= pre * 1.2, `agent RSS after the floods ${mb(post)} is within 20 % of its pre-flood ${mb(pre)} (peak ${mb(peak)})`);
  });
});
