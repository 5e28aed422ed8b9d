// nodemesh-cni against fake agents: result pass-through, CNI error JSON, fail open / fail closed, vanished netns,
// VERSION, malformed stdin; and its conflist edits (append once, remove only its own entry).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { CniEvent } from '../../src/enroll/cni-protocol';
import { appendToConflist, removeFromConflists, writePluginKubeconfig } from '../../src/cni/install';
import { AgentDownError, AgentRefusedError, CNI_CODE, runPlugin, type PluginDeps } from '../../src/cni/plugin';
import { cgroupMountOf, localIPv4, localIPv6, scanNetns } from '../../src/agent/netns-finder';

const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/proc/self/ns/net' }], ips: [{ address: '198.19.1.5/24', interface: 0 }] };
const conf = (extra: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'lab', type: 'nodemesh-cni', prevResult, ...extra });
const env = (command: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1',
  ...extra,
});

function deps(agent: PluginDeps['agent'], failClosed: boolean | null = false): PluginDeps & { events: CniEvent[] } {
  const events: CniEvent[] = [];
  return {
    events,
    agent: async (s, ev) => {
      events.push(ev);
      return agent(s, ev);
    },
    podFailClosed: async () => failClosed,
    log: () => undefined,
  };
}

test('ADD hands the pod to the agent and passes the previous result through', async () => {
  const d = deps(async () => ({ enrolled: true }));
  const out = await runPlugin(env('ADD'), conf(), d);
  assert.equal(out.exit, 0);
  assert.deepEqual(JSON.parse(out.stdout), prevResult);
  assert.deepEqual(d.events[0], { command: 'ADD', namespace: 'default', name: 'web', uid: 'u1', containerId: 'c1', netnsPath: '/proc/self/ns/net', ips: ['198.19.1.5'] });
});

test('VERSION, malformed stdin, unsupported versions, unchained use', async () => {
  const d = deps(async () => ({ enrolled: true }));
  assert.deepEqual(JSON.parse((await runPlugin({ CNI_COMMAND: 'VERSION' }, '', d)).stdout).supportedVersions.includes('1.0.0'), true);
  const bad = await runPlugin(env('ADD'), '{not json', d);
  assert.equal(bad.exit, 1);
  assert.equal(JSON.parse(bad.stdout).code, CNI_CODE.DECODE);
  assert.match(JSON.parse(bad.stdout).msg, /cannot decode the network configuration/);
  assert.equal(JSON.parse((await runPlugin(env('ADD'), conf({ cniVersion: '9.9.9' }), d)).stdout).code, CNI_CODE.INCOMPATIBLE_VERSION);
  const alone = JSON.parse((await runPlugin(env('ADD'), JSON.stringify({ cniVersion: '1.0.0', type: 'nodemesh-cni' }), d)).stdout);
  assert.equal(alone.code, CNI_CODE.INVALID_CONFIG);
  assert.match(alone.msg, /must be chained/);
  assert.equal(d.events.length, 0, 'nothing reached the agent');
});

test('a prevResult whose ips are not a list of address objects is CNI error JSON, not a rejection (fuzz: cni-stdin)', async () => {
  // From the fuzzer: prevResult.ips of "x", {}, 5 or [null] made runPlugin reject with a TypeError; nodemesh-cni's
  // main does not catch it, so the runtime got a stack trace and no error JSON.
  for (const ips of ['x', {}, 5, [null], [{ address: 7 }], [{}]]) {
    const d = deps(async () => ({ enrolled: true }));
    const out = await runPlugin(env('ADD'), conf({ prevResult: { ...prevResult, ips } }), d);
    assert.equal(out.exit, 1, JSON.stringify(ips));
    const e = JSON.parse(out.stdout);
    assert.equal(e.code, CNI_CODE.INVALID_CONFIG);
    assert.match(e.msg, /prevResult\.ips is not a list/);
    assert.equal(d.events.length, 0);
  }
  const d = deps(async () => ({ enrolled: true }));
  const out = await runPlugin(env('ADD'), conf({ prevResult: { ...prevResult, ips: [{ address: '198.19.1.5/24' }, { address: 'fd00::5/64' }] } }), d);
  assert.equal(out.exit, 0);
  assert.deepEqual(d.events[0]!.ips, ['198.19.1.5', 'fd00::5']);
});

test('a vanished netns is an error and reaches no agent', async () => {
  const d = deps(async () => ({ enrolled: true }));
  const out = await runPlugin(env('ADD', { CNI_NETNS: '/run/netns/nm-gone-for-good' }), conf(), d);
  assert.equal(out.exit, 1);
  const e = JSON.parse(out.stdout);
  assert.equal(e.code, CNI_CODE.CONTAINER_UNKNOWN);
  assert.match(e.msg, /nm-gone-for-good of pod default\/web does not exist/);
  assert.equal(d.events.length, 0);
});

test('agent down: ADD fails open, unless the pod is fail-closed; DEL always succeeds', async () => {
  const down = async (): Promise<never> => {
    throw new AgentDownError('the node agent is not answering on /x: connect ENOENT');
  };
  const open = await runPlugin(env('ADD'), conf(), deps(down, false));
  assert.equal(open.exit, 0);
  assert.deepEqual(JSON.parse(open.stdout), prevResult);
  const unknown = await runPlugin(env('ADD'), conf(), deps(down, null));
  assert.equal(unknown.exit, 0, 'an unknown annotation (no API) fails open too');
  const closed = await runPlugin(env('ADD'), conf(), deps(down, true));
  assert.equal(closed.exit, 1);
  assert.equal(JSON.parse(closed.stdout).code, CNI_CODE.TRY_AGAIN_LATER);
  assert.match(JSON.parse(closed.stdout).msg, /fail-closed/);
  const del = await runPlugin(env('DEL'), conf(), deps(down));
  assert.deepEqual(del, { stdout: '', exit: 0 });
});

test('agent refusals: a gone netns is code 3, other 4xx name the agent code', async () => {
  const gone = await runPlugin(env('ADD'), conf(), deps(async () => { throw new AgentRefusedError(400, 'NM_ENROLL_NO_NETNS', 'network namespace x does not exist'); }));
  assert.equal(JSON.parse(gone.stdout).code, CNI_CODE.CONTAINER_UNKNOWN);
  const check = await runPlugin(env('CHECK'), conf(), deps(async () => { throw new AgentRefusedError(409, 'NM_ENROLL_NOT_ENROLLED', 'pod default/web should be in the mesh but is not enrolled'); }));
  assert.equal(JSON.parse(check.stdout).code, CNI_CODE.NOT_ENROLLED);
  assert.match(JSON.parse(check.stdout).msg, /should be in the mesh/);
});

test('conflist: the entry is appended once, updated in place, and removal leaves the rest as it was', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cni-'));
  try {
    const file = path.join(dir, '10-net.conflist');
    const original = { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'cni0' }, { type: 'portmap' }] };
    fs.writeFileSync(file, JSON.stringify(original));
    fs.writeFileSync(path.join(dir, '99-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'ptp' }] }));
    assert.equal(appendToConflist(dir, { enrollSocket: '/s' }).changed, true);
    assert.equal(appendToConflist(dir, { enrollSocket: '/s' }).changed, false);
    appendToConflist(dir, { enrollSocket: '/t' });
    const now = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(now.plugins.map((p: { type: string }) => p.type), ['bridge', 'portmap', 'nodemesh-cni']);
    assert.equal(now.plugins[2].enrollSocket, '/t');
    assert.deepEqual(removeFromConflists(dir), [file]);
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), original);
    assert.throws(() => appendToConflist(path.join(dir, 'none'), {}), /cannot read the CNI config dir/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('netns finder reads local addresses from fib_trie and if_inet6', () => {
  const trie = 'Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 198.19.1.5\n        /32 host LOCAL\n     |-- 198.19.1.0\n        /24 link UNICAST\n     |-- 127.0.0.1\n        /32 host LOCAL\n';
  assert.deepEqual(localIPv4(trie), ['198.19.1.5']);
  assert.deepEqual(localIPv6('fd000000000000000000000000000005 02 80 00 80     eth0\n00000000000000000000000000000001 01 80 10 80       lo\n'), ['fd00::5']);
});

test('netns finder: cgroup paths are relative to the cgroup mount, and a pod under the agent\'s cgroup root wins an address another namespace also has', () => {
  assert.equal(cgroupMountOf('/sys/fs/cgroup/nodemesh-lab/l1/node-a/pods', ['/sys/fs/cgroup']), '/sys/fs/cgroup');
  assert.equal(cgroupMountOf('/run/x/cg/pods', ['/sys/fs/cgroup', '/run/x/cg']), '/run/x/cg');
  assert.equal(cgroupMountOf('/elsewhere', ['/sys/fs/cgroup']), '/elsewhere');
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-proc-'));
  const mount = '/fake-cgroup2';
  const root = path.join(mount, 'lab-x', 'node-a', 'pods');
  const rel = path.relative(mount, root);
  const trie = (ip: string): string => `Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- ${ip}\n        /32 host LOCAL\n`;
  const fakeProc = (pid: number, netInode: number, ip: string, cgroup: string): void => {
    const d = path.join(proc, String(pid));
    fs.mkdirSync(path.join(d, 'ns'), { recursive: true });
    fs.mkdirSync(path.join(d, 'net'));
    fs.symlinkSync(`net:[${netInode}]`, path.join(d, 'ns', 'net'));
    fs.writeFileSync(path.join(d, 'net', 'fib_trie'), trie(ip));
    fs.writeFileSync(path.join(d, 'net', 'if_inet6'), '');
    fs.writeFileSync(path.join(d, 'cgroup'), `0::${cgroup}\n`);
  };
  try {
    fakeProc(10, 1001, '198.19.1.2', '/lab-y/node-a/pods/pod1'); // another lab's pod, same address, listed first
    fakeProc(20, 1002, '198.19.1.2', `/${rel}/podabc`);
    fakeProc(30, 1003, '198.19.1.3', '/elsewhere');
    const found = scanNetns(proc, root, [], [mount]);
    assert.equal(found.get('198.19.1.2')?.pid, 20);
    assert.equal(found.get('198.19.1.2')?.cgroupPath, path.join(root, 'podabc'));
    assert.equal(found.get('198.19.1.3')?.cgroupPath, path.join(mount, 'elsewhere'));
  } finally {
    fs.rmSync(proc, { recursive: true, force: true });
  }
});

test('in a cluster the plugin gets its own kubeconfig: a private copy of the agent token, the API CA, the Service address', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cnikc-'));
  try {
    const sa = path.join(dir, 'sa');
    fs.mkdirSync(sa);
    fs.writeFileSync(path.join(sa, 'token'), 'tok-1');
    fs.writeFileSync(path.join(sa, 'ca.crt'), 'CA');
    const host = path.join(dir, 'host');
    assert.equal(writePluginKubeconfig(host, sa, {}), null, 'outside a cluster: none');
    const file = writePluginKubeconfig(host, sa, { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })!;
    const kc = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(kc.clusters[0].cluster.server, 'https://10.0.0.1:443');
    assert.equal(Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), 'CA');
    assert.equal(fs.readFileSync(kc.users[0].user.tokenFile, 'utf8'), 'tok-1');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(kc.users[0].user.tokenFile).mode & 0o777, 0o600);
    fs.writeFileSync(path.join(sa, 'token'), 'tok-2');
    writePluginKubeconfig(host, sa, { KUBERNETES_SERVICE_HOST: '10.0.0.1' });
    assert.equal(fs.readFileSync(kc.users[0].user.tokenFile, 'utf8'), 'tok-2', 'a rotated token is copied again');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
