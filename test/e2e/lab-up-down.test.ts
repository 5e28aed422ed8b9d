// e2e (root): lab up/exec/status/down with the fake agent; cross-node traffic, enrollment, no leftovers.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EnrollClient } from '../../src/enroll/client';
import { killAgent, labDown, labExecCapture, labStatus, labUp, LabError, readState, readStateIfAny, startAgent, type LabState, type LabStatus } from '../../src/lab';
import { enrollSocket, statePath } from '../../src/lab/paths';
import { labLeftovers, statePids } from '../fixtures/lab-leftovers';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'test', 'fixtures', 'lab-cli.js');
const FAKE_AGENT = [process.execPath, path.join(ROOT, 'dist', 'test', 'fixtures', 'fake-agent.js')];
const isRoot = process.getuid?.() === 0;

function uniqueLab(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-lab-test-'));
function manifestFile(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

function pod(name: string, node: string, command: string[], extra: { annotations?: Record<string, string>; podIP?: string; env?: Record<string, string> } = {}): string {
  const ann = extra.annotations ? `\n  annotations: ${JSON.stringify(extra.annotations)}` : '';
  const env = extra.env ? `\n      env: ${JSON.stringify(Object.entries(extra.env).map(([k, v]) => ({ name: k, value: v })))}` : '';
  const status = extra.podIP ? `\nstatus: {podIP: ${extra.podIP}}` : '';
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  labels: {app: ${name}}${ann}
spec:
  nodeName: ${node}
  serviceAccountName: ${name}
  containers:
    - name: main
      command: ${JSON.stringify(command)}${env}${status}
`;
}

const MANIFEST = [
  pod('client', 'node-a', ['sleep', 'infinity'], { env: { GREETING: 'hi' } }),
  pod('http-a', 'node-a', ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'http', '--version', 'v1']),
  pod('echo-b', 'node-b', ['nodemesh', 'sample', 'echo', '--port', '9000', '--host', '$(POD_IP)']),
  pod('pinned', 'node-b', ['nodemesh', 'sample', 'echo', '--port', '9000'], { podIP: '198.18.9.9' }),
  pod('legacy', 'node-b', ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'legacy', '--version', 'v0'], { annotations: { 'nodemesh.io/enroll': 'false' } }),
  'apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec: {selector: {app: echo-b}, ports: [{port: 9000}]}\n',
].join('---\n');

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function up(lab: string, file: string, keepGoing = false): Promise<LabState> {
  return labUp({ file, lab, agentCommand: FAKE_AGENT, cli: CLI, keepGoing, agentReadyTimeoutMs: 15_000 });
}

/** Tears a lab down whatever happened, then asserts nothing is left. */
async function downAndCheck(lab: string, pids: number[]): Promise<void> {
  await labDown({ lab });
  assert.deepEqual(labLeftovers(lab, pids), []);
}

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('lab e2e with the fake agent', { skip: !isRoot && 'needs root' }, () => {
  const lab = uniqueLab('e2e');
  let state: LabState;
  let pids: number[] = [];

  before(async () => {
    state = await up(lab, manifestFile('main.yaml', MANIFEST));
    pids = statePids(state);
  });
  after(async () => {
    // Even when a test failed: leave nothing behind.
    await labDown({ lab }).catch(() => undefined);
  });

  const ip = (name: string): string => state.pods.find((p) => p.name === name)?.ip ?? assert.fail(`no pod ${name}`);

  it('plans addresses per node and records them', () => {
    assert.equal(state.phase, 'ready');
    assert.deepEqual(state.nodes.map((n) => [n.name, n.fabricIP, n.cidr]), [['node-a', '198.18.0.1', '198.19.1.0/24'], ['node-b', '198.18.0.2', '198.19.2.0/24']]);
    assert.deepEqual(state.pods.map((p) => [p.name, p.ip]), [['client', '198.19.1.2'], ['http-a', '198.19.1.3'], ['echo-b', '198.19.2.2'], ['pinned', '198.18.9.9'], ['legacy', '198.19.2.3']]);
    assert.deepEqual(state.objects, [{ kind: 'Service', namespace: 'default', name: 'echo' }]);
  });

  it('carries bytes exactly across nodes, to a pinned /32 and back (half-close honoured)', async () => {
    for (const target of ['echo-b', 'pinned']) {
      const r = await labExecCapture(lab, 'client', ['nodemesh', 'sample', 'pump', '--connect', `${ip(target)}:9000`, '--bytes', String(3 << 20)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const res = JSON.parse(r.stdout) as { ok: boolean; received: number; local: { address: string } };
      assert.equal(res.ok, true);
      assert.equal(res.received, 3 << 20);
      assert.equal(res.local.address, ip('client'));
    }
  });

  it('serves HTTP on the same node and across nodes, showing the real peer address', async () => {
    for (const [target, version] of [['http-a', 'v1'], ['legacy', 'v0']] as const) {
      const r = await labExecCapture(lab, 'default/client', ['nodemesh', 'sample', 'client', '--url', `http://${ip(target)}:8080/x?y=1`, '--count', '2']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { status: number; body: { version: string; pod: string; path: string; peer: { address: string } } });
      assert.equal(lines.length, 2);
      assert.equal(lines[0]?.status, 200);
      assert.equal(lines[0]?.body.version, version);
      assert.equal(lines[0]?.body.pod, target);
      assert.equal(lines[0]?.body.path, '/x?y=1');
      assert.equal(lines[0]?.body.peer.address, ip('client'));
    }
    const big = await labExecCapture(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${ip('legacy')}:8080/bytes/1000000`]);
    assert.equal((JSON.parse(big.stdout) as { bytes: number }).bytes, 1_000_000);
  });

  it('enrolls pods with their agent, except the opted-out one', async () => {
    const a = await new EnrollClient(enrollSocket(lab, 'node-a')).list();
    const b = await new EnrollClient(enrollSocket(lab, 'node-b')).list();
    assert.deepEqual(a.map((p) => p.name).sort(), ['client', 'http-a']);
    assert.deepEqual(b.map((p) => p.name).sort(), ['echo-b', 'pinned']);
    const client = a.find((p) => p.name === 'client');
    assert.equal(client?.serviceAccount, 'client');
    assert.deepEqual(client?.ips, ['198.19.1.2']);
    assert.equal(client?.netnsPath, `/run/netns/nm-${lab}-default-client`);
    assert.match(client?.cgroupPath ?? '', new RegExp(`/nodemesh-lab-${lab}/node-a/pods/default-client$`));
  });

  it('runs pod processes in the pod netns and cgroup with the pod environment', async () => {
    const r = await labExecCapture(lab, 'client', ['sh', '-c', 'cat /proc/self/cgroup; echo "$POD_NAME $POD_NAMESPACE $POD_IP $NODE_NAME"; ip -o -4 addr show dev eth0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^0::/nodemesh-lab-${lab}/node-a/pods/default-client$`, 'm'));
    assert.match(r.stdout, /^client default 198\.19\.1\.2 node-a$/m);
    assert.match(r.stdout, /inet 198\.19\.1\.2\/32/);
    // Container processes (not only exec'd ones) are in the pod cgroup and see container env.
    const echoPid = state.pods.find((p) => p.name === 'echo-b')?.containers[0]?.proc?.pid;
    assert.match(fs.readFileSync(`/proc/${echoPid}/cgroup`, 'utf8'), new RegExp(`^0::/nodemesh-lab-${lab}/node-b/pods/default-echo-b$`, 'm'));
    // $(POD_IP) in its args was expanded before exec.
    assert.match(fs.readFileSync(`/proc/${echoPid}/cmdline`, 'utf8'), /\x00--host\x00198\.19\.2\.2\x00?$/);
    const clientPid = state.pods.find((p) => p.name === 'client')?.containers[0]?.proc?.pid;
    assert.match(fs.readFileSync(`/proc/${clientPid}/environ`, 'utf8'), /(^|\0)GREETING=hi\0/);
  });

  it('lab exec through the CLI propagates exit codes and reports unknown pods', () => {
    assert.equal(cli(['lab', 'exec', '--name', lab, 'client', '--', 'sh', '-c', 'exit 3']).code, 3);
    const r = cli(['lab', 'exec', '--name', lab, 'nope', '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /NM_LAB_POD_NOT_FOUND.*default\/client/);
  });

  it('lab status --json reports nodes, IPs, enrollment and agents', () => {
    const r = cli(['lab', 'status', '--name', lab, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as LabStatus;
    assert.equal(s.phase, 'ready');
    assert.deepEqual(s.nodes.map((n) => [n.name, n.agentAlive, n.ready]), [['node-a', true, true], ['node-b', true, true]]);
    assert.deepEqual(s.pods.map((p) => [p.name, p.ip, p.enroll, p.enrolled, p.containers[0]?.running]), [
      ['client', '198.19.1.2', true, true, true],
      ['http-a', '198.19.1.3', true, true, true],
      ['echo-b', '198.19.2.2', true, true, true],
      ['pinned', '198.18.9.9', true, true, true],
      ['legacy', '198.19.2.3', false, false, true],
    ]);
    const text = cli(['lab', 'status', '--name', lab]);
    assert.match(text.stdout, /default\/legacy\s+node-b\s+198\.19\.2\.3\s+no \(opted out\)/);
  });

  it('restarts a node agent (crash then start) and reports it', async () => {
    const old = readState(lab).nodes[1]?.agent?.pid;
    await killAgent(lab, 'node-b', 'SIGKILL');
    const down = await labStatus(lab);
    assert.deepEqual(down.nodes.map((n) => [n.name, n.agentAlive, n.ready]), [['node-a', true, true], ['node-b', false, false]]);
    await assert.rejects(startAgent(lab, 'node-a'), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_AGENT_START');
    await startAgent(lab, 'node-b');
    const s = readState(lab);
    assert.notEqual(s.nodes[1]?.agent?.pid, old);
    pids.push(s.nodes[1]?.agent?.pid as number);
    assert.equal((await labStatus(lab)).nodes[1]?.ready, true);
    // Traffic never depended on the agent (the fake one has no datapath).
    const r = await labExecCapture(lab, 'client', ['nodemesh', 'sample', 'pump', '--connect', `${ip('echo-b')}:9000`, '--bytes', '1000']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('refuses a second up with the same name, also when two race', async () => {
    const file = manifestFile('again.yaml', MANIFEST);
    await assert.rejects(up(lab, file), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_EXISTS');
    const other = uniqueLab('race');
    try {
      const results = await Promise.allSettled([up(other, file), up(other, file)]);
      assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.equal((lost.reason as LabError).code, 'NM_LAB_EXISTS');
      assert.equal(readState(other).phase, 'ready');
    } finally {
      await downAndCheck(other, []);
    }
    assert.equal(readState(lab).phase, 'ready', 'the existing lab was not touched');
  });

  it('lab down leaves nothing, and a second down is a no-op', async () => {
    assert.ok(pids.length >= 7);
    const r = cli(['lab', 'down', '--name', lab]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(labLeftovers(lab, pids), []);
    assert.equal(cli(['lab', 'down', '--name', lab]).code, 0);
  });
});

describe('lab failures clean up', { skip: !isRoot && 'needs root' }, () => {
  it('an invalid manifest creates nothing and names file, line and field', async () => {
    const lab = uniqueLab('bad');
    const file = manifestFile('bad.yaml', MANIFEST.replace('nodeName: node-b', 'nodeName: Node_B'));
    await assert.rejects(up(lab, file), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_MANIFEST_INVALID' && e.message.startsWith(`${file}:`) && /spec\.nodeName/.test(e.message));
    assert.equal(fs.existsSync(`/run/nodemesh/lab/${lab}`), false);
    assert.deepEqual(labLeftovers(lab), []);
  });

  it('a failed enrollment midway tears everything down', async () => {
    const lab = uniqueLab('fail');
    const file = manifestFile(
      'reject.yaml',
      [MANIFEST, pod('rejected', 'node-b', ['sleep', 'infinity'], { annotations: { 'test.nodemesh.io/reject-enroll': 'true' } })].join('---\n'),
    );
    try {
      await assert.rejects(up(lab, file), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_ENROLL_FAILED' && /default\/rejected/.test(e.message) && /rejected by test annotation/.test(e.message));
      assert.deepEqual(labLeftovers(lab), []);
      assert.equal(readStateIfAny(lab), undefined);
    } finally {
      await downAndCheck(lab, []);
    }
  });

  it('--keep-going keeps the lab up and records the failed pod', async () => {
    const lab = uniqueLab('keep');
    const file = manifestFile(
      'keep.yaml',
      [pod('ok', 'node-a', ['sleep', 'infinity']), pod('rejected', 'node-a', ['sleep', 'infinity'], { annotations: { 'test.nodemesh.io/reject-enroll': 'true' } })].join('---\n'),
    );
    let pids: number[] = [];
    try {
      const s = await up(lab, file, true);
      pids = statePids(s);
      assert.equal(s.phase, 'ready');
      assert.equal(s.errors.length, 1);
      assert.deepEqual(s.pods.map((p) => [p.name, p.enrolled]), [['ok', true], ['rejected', false]]);
    } finally {
      await downAndCheck(lab, pids);
    }
  });

  it('a container that exits at once fails the up and leaves nothing', async () => {
    const lab = uniqueLab('crash');
    const file = manifestFile('crash.yaml', pod('crash', 'node-a', ['sh', '-c', 'echo boom >&2; exit 4']));
    try {
      await assert.rejects(up(lab, file), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_CONTAINER_START' && /code 4/.test(e.message) && /boom/.test(e.message));
      assert.deepEqual(labLeftovers(lab), []);
    } finally {
      await downAndCheck(lab, []);
    }
  });

  it('an agent that never gets ready fails the up and leaves nothing', async () => {
    const lab = uniqueLab('dead');
    const file = manifestFile('dead.yaml', pod('p', 'node-a', ['sleep', 'infinity']));
    try {
      await assert.rejects(
        labUp({ file, lab, agentCommand: ['sh', '-c', 'echo agent cannot start >&2; exit 1', 'x'], cli: CLI }),
        (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_AGENT_START' && /agent cannot start/.test(e.message),
      );
      assert.deepEqual(labLeftovers(lab), []);
    } finally {
      await downAndCheck(lab, []);
    }
  });

  it('down of a lab leaves a lab whose name extends it alone, even by convention scan', async () => {
    const short = uniqueLab('pre');
    const long = `${short}-b`;
    const small = manifestFile('prefix.yaml', pod('p', 'node-a', ['sleep', 'infinity']));
    let longPids: number[] = [];
    try {
      const a = await up(short, small);
      const b = await up(long, small);
      longPids = statePids(b);
      fs.rmSync(statePath(short)); // force the naming-convention path
      await labDown({ lab: short });
      assert.deepEqual(labLeftovers(short, statePids(a), [long]), []);
      assert.equal(readState(long).phase, 'ready');
      const r = await labExecCapture(long, 'p', ['true']);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await labDown({ lab: short }).finally(() => labDown({ lab: long }));
      assert.deepEqual(labLeftovers(long, longPids), []);
    }
  });

  it('down works without state.json (naming convention scan)', async () => {
    const lab = uniqueLab('nost');
    const s = await up(lab, manifestFile('nost.yaml', MANIFEST));
    const pids = statePids(s);
    try {
      fs.rmSync(statePath(lab));
      assert.throws(() => readState(lab), (e: unknown) => e instanceof LabError && e.code === 'NM_LAB_NOT_FOUND');
    } finally {
      await downAndCheck(lab, pids);
    }
  });
});
