// e2e: a host where neither bpffs nor cgroup v2 is mounted (a private mount namespace with both
// unmounted) runs the README's lab through the real CLI: up, traffic over mTLS, down, nothing left.
// Before the fix, `lab up` spun forever in a recursive mkdir on sysfs; every step here has a deadline.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { labDown } from '../../src/lab';
import { e2eSkipReason } from '../helpers/netns';
import { uniqueLabName } from '../helpers/lab';
// Types only: the fixture runs when loaded.
import type { Step } from '../fixtures/fresh-host-lab';

const FIXTURE = path.resolve(__dirname, '..', 'fixtures', 'fresh-host-lab.js');
const WHOLE_RUN_MS = 240_000;

interface Report {
  before: { bpffsAt: string[]; cgroup2At: string[]; sysFsBpfIsBpffs: boolean };
  after: { bpffsAt: string[]; cgroup2At: string[] };
  steps: Step[];
  programIds: number[];
  leftovers: string[];
  error?: string;
}

function runFixture(lab: string): Promise<Report> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, FIXTURE, lab], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the fresh-host run did not finish within ${WHOLE_RUN_MS} ms; stderr:\n${err}`));
    }, WHOLE_RUN_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as Report);
      } catch {
        reject(new Error(`fixture exited ${code} without a report; stdout:\n${out}\nstderr:\n${err}`));
      }
    });
  });
}

const skip = e2eSkipReason();

describe('a host without bpffs or cgroup v2 mounted', { skip: skip ?? false }, () => {
  const lab = uniqueLabName('fh');
  after(async () => {
    // The fixture's own `lab down` ran inside its namespace; this catches what a failed run left in
    // the shared parts (netns names, cgroups, lab dir) from this side.
    await labDown({ lab }).catch(() => undefined);
  });

  it('runs lab up, traffic and lab down of the README lab within bounds and leaves nothing', async () => {
    const r = await runFixture(lab);
    assert.equal(r.error, undefined, r.error);
    const show = (s: Step): string => `${s.step}: exit ${s.code}${s.timedOut ? ' (timed out)' : ''} after ${s.ms} ms\n${s.stderr}${s.stdout}`;
    assert.deepEqual(r.before, { bpffsAt: [], cgroup2At: [], sysFsBpfIsBpffs: false }, 'the namespace must start without bpffs and cgroup v2');
    for (const s of r.steps) assert.ok(s.code === 0 && !s.timedOut, show(s));
    assert.deepEqual(r.steps.map((s) => s.step), ['lab up', 'traffic: http via the Service VIP', 'traffic: 1 MiB to echo-b (other node)', 'metrics of node-a', 'lab down']);
    const up = r.steps[0]!;
    assert.match(up.stderr, /bpffs was not mounted: mounted it at \/sys\/fs\/bpf/, 'lab up says where it mounted bpffs, once');
    assert.equal(up.stderr.match(/bpffs was not mounted/g)?.length, 1);
    assert.match(up.stderr, /cgroup v2 was not mounted: mounted it at /);
    assert.deepEqual(r.after.bpffsAt, ['/sys/fs/bpf'], 'exactly one bpffs instance, at /sys/fs/bpf');
    assert.equal(r.after.cgroup2At.length, 1, 'exactly one cgroup v2 mount');
    const replies = r.steps[1]!.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok: boolean; body?: { pod: string } });
    assert.equal(replies.length, 6);
    assert.ok(replies.every((x) => x.ok), r.steps[1]!.stdout);
    assert.deepEqual(new Set(replies.map((x) => x.body?.pod)), new Set(['http-a', 'http-b']), 'the VIP reaches endpoints on both nodes');
    const pump = JSON.parse(r.steps[2]!.stdout.trim()) as { ok: boolean; sha256Sent: string; sha256Received: string };
    assert.ok(pump.ok && pump.sha256Sent === pump.sha256Received, r.steps[2]!.stdout);
    assert.match(r.steps[3]!.stdout, /istio_tcp_connections_opened_total\{reporter="source",source_workload="client",.*destination_workload="echo-b".*connection_security_policy="mutual_tls"/);
    assert.ok(r.programIds.length >= 4, `the agents reported their programs: ${r.programIds.join(' ')}`);
    assert.deepEqual(r.leftovers, [], 'lab down left nothing in the kernel or on disk');
    assert.equal(fs.existsSync(`/run/nodemesh/lab/${lab}`), false);
    assert.deepEqual((fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []).filter((n) => n.startsWith(`nm-${lab}-`)), []);
  });
});
