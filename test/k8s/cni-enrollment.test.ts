// Pods enrolled through the CNI path and by the agent's reconcile, with pods and namespaces from a real
// kube-apiserver: the reference plugins (loopback, bridge, host-local from Debian's containernetworking-plugins)
// wire real network namespaces, invoked as a runtime does, with nodemesh-cni chained last. The test plays the
// kubelet (pods bound to a node, podIP written to their status); the agent is in-process with a fake datapath
// (the kernel part of enrollment is the e2e tier's), so what is shown here is who gets enrolled, with which
// identity and namespace, and what CNI answers in every bad case.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent } from '../../src/agent/agent';
import { createLogger } from '../../src/telemetry/logger';
import { findOrMountCgroup2 } from '../../src/util/cgroup2';
import { mountCommand } from '../../src/util/host-fs';
import { runConflist, runPlugin, type CniCall, type Conflist } from '../helpers/cni-runtime';
import { FakeDatapath } from '../helpers/fake-datapath';
import { kubeUnavailable, startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver';
import { createNamespace, createPod, setPodIp } from '../helpers/kube-objects';
import { waitFor } from '../helpers/wait';

const REF_PLUGINS = '/usr/lib/cni';
const tag = `nm-t-k8s${process.pid % 100000}`;
const nodeNs = `${tag}-node`;
const SUBNET = '198.19.231.0/24';

function skipReason(): string | null {
  return kubeUnavailable() ?? (fs.existsSync(`${REF_PLUGINS}/bridge`) ? null : 'containernetworking-plugins is not installed: run "bash scripts/kube-apiserver.sh"');
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

describe('enrollment in Kubernetes: CNI and reconcile', { skip: skipReason() ?? false }, () => {
  let k: KubeApiServer | undefined;
  let agent: Agent | undefined;
  let dir = '';
  let cgroup = '';
  let cg2 = '';
  const sleepers: ChildProcess[] = [];
  const netns: string[] = [];
  let list: Conflist;
  let binDir = '';
  const uids = new Map<string, string>();

  const podNetns = (name: string): string => {
    const n = `${tag}-${name}`;
    ip('netns', 'add', n);
    netns.push(n);
    return n;
  };
  const call = (name: string, ns: string, withUid = true): CniCall => ({
    containerId: `c-${name}`,
    netns: `/run/netns/${ns}`,
    args: { K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: name, ...(withUid && uids.has(name) ? { K8S_POD_UID: uids.get(name)! } : {}) },
    binDirs: [binDir, REF_PLUGINS],
    hostNetns: nodeNs,
  });
  const withoutNodemesh = (): Conflist => ({ ...list, plugins: list.plugins.filter((p) => p.type !== 'nodemesh-cni') });
  const enrolled = (name: string): boolean => agent!.list().some((p) => p.namespace === 'shop' && p.name === name);
  const startAgent = async (): Promise<Agent> => {
    agent = new Agent(
      { node: 'node-a', stateDir: path.join(dir, 'state'), pinRoot: '/fake', cgroupRoot: cg2, adminPort: 0, metricsPort: 0, readyPort: 0, adminHost: '127.0.0.1', drainMs: 500, kubernetes: { kubeconfig: k!.kubeconfig, procRoot: '/proc' } },
      // The agent's log stays with the API server's, for a failing run to read.
      createLogger({ level: 'debug', destination: pino.destination({ dest: path.join(dir, 'agent.log'), sync: true }) }),
      async () => new FakeDatapath(),
    );
    await agent.start();
    return agent;
  };

  before(async () => {
    k = await startKubeApiServer();
    dir = fs.mkdtempSync(path.join(k.dir, 'cni-'));
    cg2 = findOrMountCgroup2(mountCommand('cgroup2')).path;
    cgroup = path.join(cg2, tag);
    fs.mkdirSync(cgroup);
    ip('netns', 'add', nodeNs);
    netns.push(nodeNs);
    ip('-n', nodeNs, 'link', 'set', 'lo', 'up');
    binDir = path.join(dir, 'bin');
    fs.mkdirSync(binDir);
    // What the agent's installer writes on a node: a launcher running the plugin with this Node.
    fs.writeFileSync(path.join(binDir, 'nodemesh-cni'), `#!/bin/sh\nexec '${process.execPath}' '${path.resolve(__dirname, '../../src/cni/main.js')}' "$@"\n`, { mode: 0o755 });
    list = {
      cniVersion: '1.0.0',
      name: 'lab',
      plugins: [
        { type: 'bridge', bridge: 'nmk8s0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], dataDir: path.join(dir, 'ipam') } },
        { type: 'nodemesh-cni', enrollSocket: path.join(dir, 'state', 'enroll.sock'), kubeconfig: k.kubeconfig },
      ],
    };
    await createNamespace(k, 'shop', { 'nodemesh.io/mesh': 'enabled' });
    for (const [name, annotations] of [
      ['before', {}],
      ['web', {}],
      ['optout', { 'nodemesh.io/enroll': 'false' }],
      ['late', {}],
      ['closed', { 'nodemesh.io/fail-closed': 'true' }],
    ] as [string, Record<string, string>][]) {
      uids.set(name, await createPod(k, { namespace: 'shop', name, node: 'node-a', serviceAccount: name, labels: { app: name }, annotations }));
    }
  });

  after(async () => {
    await agent?.shutdown().catch(() => undefined);
    for (const s of sleepers) s.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    for (const n of netns.reverse()) spawnSync('ip', ['netns', 'del', n]);
    try {
      if (cgroup) fs.rmdirSync(cgroup);
    } catch {
      // never created, or already gone
    }
    if (process.env.NODEMESH_KEEP_LOG) fs.copyFileSync(path.join(dir, "agent.log"), process.env.NODEMESH_KEEP_LOG);
    await k?.stop();
  });

  it('a pod that ran before the agent is enrolled by reconcile, without CNI', async () => {
    const ns = podNetns('before');
    const r = await runConflist(withoutNodemesh(), 'ADD', call('before', ns));
    assert.ok(r.ok, JSON.stringify(r.runs));
    const podIp = String((r.result!.ips as { address: string }[])[0]!.address).split('/')[0]!;
    await setPodIp(k!, 'shop', 'before', podIp);
    const sleeper = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'sleep', '600'], { stdio: 'ignore' });
    sleepers.push(sleeper);
    await waitFor('sleeper in the pod netns', async () => sleeper.pid !== undefined && fs.readlinkSync(`/proc/${sleeper.pid}/ns/net`) !== fs.readlinkSync('/proc/self/ns/net'));
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(sleeper.pid));
    await startAgent();
    await waitFor('enrolled by reconcile', async () => enrolled('before'), 15_000);
    const pod = agent!.list().find((p) => p.name === 'before')!;
    assert.equal(pod.uid, uids.get('before'));
    assert.equal(pod.serviceAccount, 'before');
    assert.deepEqual(pod.ips, [podIp]);
    assert.match(pod.netnsPath, /^\/proc\/\d+\/ns\/net$/);
    assert.equal(pod.cgroupPath, cgroup);
  });

  it('CNI ADD through the real plugin chain enrolls the pod with its API identity; CHECK passes; DEL unenrolls', async () => {
    const ns = podNetns('web');
    const add = await runConflist(list, 'ADD', call('web', ns));
    assert.ok(add.ok, JSON.stringify(add.runs));
    const ips = add.result!.ips as { address: string }[];
    assert.match(ips[0]!.address, /^198\.19\.231\.\d+\/24$/, 'the result of bridge/host-local passed through nodemesh-cni');
    assert.ok(Array.isArray(add.result!.interfaces));
    const pod = agent!.list().find((p) => p.name === 'web');
    assert.ok(pod, `enrolled; nodemesh-cni said: ${add.runs[add.runs.length - 1]!.stderr}`);
    assert.equal(pod.serviceAccount, 'web');
    assert.equal(pod.labels.app, 'web');
    assert.equal(pod.netnsPath, `/run/netns/${ns}`);
    assert.deepEqual(pod.ips, [ips[0]!.address.split('/')[0]]);
    const check = await runConflist(list, 'CHECK', call('web', ns), add.result!);
    assert.ok(check.ok, JSON.stringify(check.runs));
    const del = await runConflist(list, 'DEL', call('web', ns), add.result!);
    assert.ok(del.ok, JSON.stringify(del.runs));
    assert.equal(enrolled('web'), false);
  });

  it('an opted-out pod starts and is not enrolled', async () => {
    const ns = podNetns('optout');
    const add = await runConflist(list, 'ADD', call('optout', ns));
    assert.ok(add.ok);
    assert.equal(enrolled('optout'), false);
    await runConflist(list, 'DEL', call('optout', ns), add.result!);
  });

  it('malformed stdin: CNI error JSON, code 6', () => {
    const r = spawnSync(path.join(binDir, 'nodemesh-cni'), [], { input: '{"cniVersion": "1.0.0", ', env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string; details: string };
    assert.equal(e.code, 6);
    assert.match(e.msg, /cannot decode the network configuration/);
  });

  it('a pod whose netns vanished: code 3, nothing enrolled', async () => {
    const ns = podNetns('late');
    const wired = await runConflist(withoutNodemesh(), 'ADD', call('late', ns));
    assert.ok(wired.ok);
    ip('netns', 'del', ns);
    netns.splice(netns.indexOf(ns), 1);
    const r = await runPlugin('nodemesh-cni', 'ADD', { ...list.plugins[1]!, cniVersion: '1.0.0', name: 'lab', prevResult: wired.result }, call('late', ns));
    assert.equal(r.exit, 1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string };
    assert.equal(e.code, 3);
    assert.match(e.msg, /does not exist/);
    assert.equal(enrolled('late'), false);
    await runConflist(withoutNodemesh(), 'DEL', { ...call('late', ns), netns: '' }, wired.result!);
  });

  it('agent down: a pod starts unmeshed (fail open), a fail-closed pod does not; the agent enrolls the first on return', async () => {
    await agent!.shutdown();
    agent = undefined;
    const ns = podNetns('late2');
    const open = await runConflist(list, 'ADD', { ...call('late', ns), args: { K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'late', K8S_POD_UID: uids.get('late')! } });
    assert.ok(open.ok, `fail open: ${JSON.stringify(open.runs.map((x) => x.stdout + x.stderr))}`);
    assert.match(open.runs[open.runs.length - 1]!.stderr, /failing open/);
    const closedNs = podNetns('closed');
    const closed = await runConflist(list, 'ADD', call('closed', closedNs));
    assert.equal(closed.ok, false, `fail-closed refused; nodemesh-cni said: ${closed.runs[closed.runs.length - 1]!.stderr}`);
    assert.equal(closed.result!.code, 11);
    assert.match(String(closed.result!.msg), /shop\/closed is annotated nodemesh.io\/fail-closed/);
    // The runtime deleted what the chain had set up: the address is back in the pool.
    assert.ok(closed.runs.some((x) => x.type === 'bridge'));
    // The agent returns: the fail-open pod, now running with an IP, is enrolled by reconcile.
    const podIp = String((open.result!.ips as { address: string }[])[0]!.address).split('/')[0]!;
    await setPodIp(k!, 'shop', 'late', podIp);
    const sleeper = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'sleep', '600'], { stdio: 'ignore' });
    sleepers.push(sleeper);
    await waitFor('sleeper', async () => sleeper.pid !== undefined && fs.readlinkSync(`/proc/${sleeper.pid}/ns/net`) !== fs.readlinkSync('/proc/self/ns/net'));
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(sleeper.pid));
    await startAgent();
    await waitFor('the fail-open pod enrolled after the agent came back', async () => enrolled('late'), 15_000);
    assert.equal(enrolled('closed'), false);
  });

  it('a pod deleted from the API is unenrolled by reconcile', async () => {
    assert.ok(enrolled('before'));
    await k!.must('DELETE', '/api/v1/namespaces/shop/pods/before?gracePeriodSeconds=0');
    await waitFor('unenrolled after delete', async () => !enrolled('before'), 15_000);
  });
});
