// e2e (root): restart adoption of pinned links, full detach, pruning, rollback and preflight errors.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatapath } from '../../src/datapath/datapath';
import { loadNative } from '../../src/datapath/native';
import { skLookupPin } from '../../src/datapath/pod-datapath';
import type { Datapath, PodDatapath } from '../../src/datapath/types';
import { CLIENT_JS, createTestNet, e2eSkipReason, firstLine, serverJs, type TestNet } from '../helpers/netns';

const skip = e2eSkipReason();
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** bpftool's view of one cgroup: attach type -> program names attached there. */
function cgroupProgs(cg: string): Record<string, string[]> {
  const list = JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cg], { encoding: 'utf8' }).trim() || '[]') as { attach_type: string; name: string }[];
  const out: Record<string, string[]> = {};
  for (const p of list) (out[p.attach_type] ??= []).push(p.name);
  return out;
}

async function gone(id: number): Promise<boolean> {
  // programs are freed after an RCU grace period once the last reference drops
  for (let i = 0; i < 50; i++) {
    if (loadNative().programInfo(id) === null) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

function closeFds(...fds: (number | null)[]): void {
  for (const fd of fds) if (fd !== null) fs.closeSync(fd);
}

function closeListeners(pod: PodDatapath): void {
  const l = pod.listeners;
  closeFds(l.outbound4, l.outbound6, l.inbound4, l.inbound6);
}

async function redirectedDial(t: TestNet, pod: PodDatapath): Promise<unknown> {
  const srv = net.createServer((s) => {
    s.end(JSON.stringify(pod.originalDst({ ip: s.remoteAddress!, port: s.remotePort! }, { ip: s.localAddress!, port: s.localPort! })));
  });
  await new Promise<void>((r) => srv.listen({ fd: pod.listeners.outbound4 }, () => r()));
  try {
    const line = await firstLine(t.spawnIn(t.a, ['node', '-e', CLIENT_JS, '198.18.255.90', '8443'], { inCgroup: true }));
    return JSON.parse((JSON.parse(line) as { data: string }).data);
  } finally {
    await new Promise((r) => srv.close(r)); // closes the listener fd too
  }
}

describe('datapath lifecycle', { skip: skip ?? false }, () => {
  let t: TestNet;
  const open: Datapath[] = [];

  before(() => {
    t = createTestNet();
  });

  after(async () => {
    try {
      for (const dp of open) await dp.close({ detach: true });
    } finally {
      t?.destroy(); // also detaches whatever is still pinned under the test pin root
    }
  });

  async function openDp(): Promise<Datapath> {
    const dp = await openDatapath({ pinRoot: t.pinRoot, cgroupRoot: t.cgroup }, quiet);
    open.push(dp);
    return dp;
  }

  test('close({detach:false}) keeps pinned state and a restart adopts it in place', async () => {
    const uidA = `a-${t.tag}`;
    const uidC = `c-${t.tag}`;
    const c = t.addNs('c');
    const dp1 = await openDp();
    const podA = await dp1.enroll({ uid: uidA, netnsPath: t.a.path, ips: [t.a.ip], failClosed: false });
    const podC = await dp1.enroll({ uid: uidC, netnsPath: c.path, ips: [c.ip], failClosed: false });
    assert.deepEqual(await redirectedDial(t, podA), { ip: '198.18.255.90', port: 8443 });
    const first = dp1.status().programs;
    closeListeners(podC);
    closeFds(podA.listeners.outbound6, podA.listeners.inbound4, podA.listeners.inbound6); // outbound4 closed by its server
    await dp1.close({ detach: false });

    // SIGKILL-equivalent: links and maps stay pinned and attached
    assert.ok(fs.existsSync(path.join(t.pinRoot, 'nm_pods')));
    assert.ok(fs.existsSync(skLookupPin(t.pinRoot, uidA)));
    const hooks = cgroupProgs(t.cgroup);
    assert.deepEqual(hooks.cgroup_inet4_connect, ['nm_sock4_connect']);

    const dp2 = await openDp();
    const second = dp2.status().programs;
    for (const p of second) {
      const old = first.find((f) => f.name === p.name)!;
      assert.equal(p.adopted, true, `${p.name} adopted`);
      assert.equal(p.linkId, old.linkId, `${p.name} keeps its link`);
      assert.notEqual(p.programId, old.programId, `${p.name} runs the new program`);
    }
    // exactly one program per hook, and the old programs are gone
    assert.deepEqual(cgroupProgs(t.cgroup), {
      cgroup_inet4_connect: ['nm_sock4_connect'],
      cgroup_inet6_connect: ['nm_sock6_connect'],
      cgroup_sock_ops: ['nm_sockops'],
    });
    for (const p of first.filter((f) => f.attachType !== 'sk_lookup')) assert.ok(await gone(p.programId), `old ${p.name} freed`);

    // the agent re-enrolls the pods it still has; A's counters survived in the pinned map
    const podA2 = await dp2.enroll({ uid: uidA, netnsPath: t.a.path, ips: [t.a.ip], failClosed: false });
    const skl = dp2.status().programs.find((p) => p.attachType === 'sk_lookup')!;
    assert.equal(skl.adopted, true);
    assert.equal(skl.linkId, first.find((p) => p.target === t.a.path)!.linkId);
    assert.equal(dp2.podCounters(podA2.netnsCookie)!.redirected, 1n);
    assert.deepEqual(await redirectedDial(t, podA2), { ip: '198.18.255.90', port: 8443 });

    // reconcile: C is not kept -> its nm_pods entry and sk_lookup link go
    const removed = await dp2.pruneExcept(new Set([uidA]), new Set([podA2.netnsCookie]));
    assert.ok(removed >= 2, `removed ${removed}`);
    assert.equal(dp2.podCounters(podC.netnsCookie), null);
    assert.equal(loadNative().linkInfo(skLookupPin(t.pinRoot, uidC)), null);
    assert.ok(loadNative().linkInfo(skLookupPin(t.pinRoot, uidA)));
    closeFds(podA2.listeners.outbound6, podA2.listeners.inbound4, podA2.listeners.inbound6);
  });

  test('close({detach:true}) leaves no pins, links or programs', async () => {
    const dp = open[open.length - 1]!;
    const ids = dp.status().programs.map((p) => ({ prog: p.programId, link: p.linkId }));
    await dp.close({ detach: true });
    assert.equal(fs.existsSync(t.pinRoot), false);
    assert.deepEqual(cgroupProgs(t.cgroup), {});
    for (const id of ids) {
      assert.ok(await gone(id.prog), `program ${id.prog} freed`);
      assert.throws(() => execFileSync('bpftool', ['link', 'show', 'id', String(id.link)], { stdio: 'pipe' }));
    }
  });

  test('a missing netns gives a clear error and leaves nothing behind', async () => {
    const dp = await openDp();
    const before = dp.status();
    const uid = `missing-${t.tag}`;
    await assert.rejects(dp.enroll({ uid, netnsPath: `/run/netns/nm-t-${t.tag}-missing`, ips: ['198.18.255.1'], failClosed: false }), (err: Error & { code: string }) => {
      assert.equal(err.code, 'NM_DATAPATH_NETNS_MISSING');
      assert.match(err.message, /does not exist.*is the pod sandbox still running\?/);
      return true;
    });
    const now = dp.status();
    assert.deepEqual(now.programs, before.programs);
    assert.deepEqual(now.maps, before.maps);
    assert.equal(fs.existsSync(skLookupPin(t.pinRoot, uid)), false);
  });

  test('a failed enroll (15001 taken in the pod) rolls back every step', async () => {
    const dp = open[open.length - 1]!;
    const d = t.addNs('d');
    // a process in the pod already owns 127.0.0.1:15001 without SO_REUSEPORT
    await firstLine(t.spawnIn(d, ['node', '-e', serverJs('127.0.0.1', 15001, 'squatter')]));
    const before = dp.status();
    const uid = `d-${t.tag}`;
    await assert.rejects(dp.enroll({ uid, netnsPath: d.path, ips: [d.ip], failClosed: false }), (err: Error & { code: string }) => {
      assert.equal(err.code, 'NM_DATAPATH_LISTEN');
      assert.match(err.message, /127\.0\.0\.1:15001/);
      return true;
    });
    assert.deepEqual(dp.status().maps, before.maps);
    assert.equal(fs.existsSync(skLookupPin(t.pinRoot, uid)), false);
  });

  test('a netns already enrolled under another uid is refused without touching the first pod', async () => {
    const dp = open[open.length - 1]!;
    const e = t.addNs('e');
    const first = await dp.enroll({ uid: `e1-${t.tag}`, netnsPath: e.path, ips: [e.ip], failClosed: false });
    await assert.rejects(dp.enroll({ uid: `e2-${t.tag}`, netnsPath: e.path, ips: [], failClosed: false }), {
      code: 'NM_DATAPATH_POD_EXISTS',
      message: new RegExp(`already enrolled as pod e1-${t.tag}`),
    });
    assert.ok(dp.podCounters(first.netnsCookie));
    assert.ok(loadNative().linkInfo(skLookupPin(t.pinRoot, `e1-${t.tag}`)));
    assert.equal(fs.existsSync(skLookupPin(t.pinRoot, `e2-${t.tag}`)), false);
    await dp.unenroll(first.uid);
    closeListeners(first);
  });

  test('bpffs is mounted when absent, and the datapath says where', async () => {
    // a private mount namespace: unmounting /sys/fs/bpf there leaves the host's mount alone
    const datapath = path.resolve(__dirname, '../../src/datapath/datapath.js');
    const script = `
const { openDatapath } = require(${JSON.stringify(datapath)});
const logs = [];
const log = { info: (o, m) => logs.push({ ...o, msg: m }), warn() {}, error() {}, debug() {} };
(async () => {
  const dp = await openDatapath({ pinRoot: '/sys/fs/bpf/nodemesh/test-${t.tag}-mnt/v1', cgroupRoot: ${JSON.stringify(t.cgroup)} }, log);
  const type = require('fs').statfsSync('/sys/fs/bpf').type;
  await dp.close({ detach: true });
  console.log(JSON.stringify({ mounted: logs.find((l) => /bpffs/.test(l.msg)), type }));
})().catch((e) => { console.log(JSON.stringify({ error: e.message })); });
`;
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `umount /sys/fs/bpf && exec ${process.execPath} -e "$0"`, script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const res = JSON.parse(await firstLine(child)) as { mounted?: { where: string; msg: string }; type?: number; error?: string };
    assert.equal(res.error, undefined);
    assert.deepEqual(res.mounted, { where: '/sys/fs/bpf', msg: 'bpffs was not mounted: mounted it at /sys/fs/bpf' });
    assert.equal(res.type, 0xcafe4a11);
    // its own hooks are gone again; only the still-open datapath of the earlier tests remains attached
    for (const names of Object.values(cgroupProgs(t.cgroup))) assert.equal(names.length, 1);
  });

  test('preflight names what is missing', async () => {
    await assert.rejects(openDatapath({ pinRoot: t.pinRoot, cgroupRoot: '/sys/fs/cgroup/cpu' }, quiet), { code: 'NM_DATAPATH_NO_CGROUP2' });
    await assert.rejects(openDatapath({ pinRoot: path.join(t.tmpDir, 'pins'), cgroupRoot: t.cgroup }, quiet), { code: 'NM_DATAPATH_BPFFS' });
    await assert.rejects(openDatapath({ pinRoot: t.pinRoot, cgroupRoot: t.cgroup, objectPath: path.join(t.tmpDir, 'nope.o') }, quiet), {
      code: 'NM_DATAPATH_NO_OBJECT',
    });
  });
});
