#!/usr/bin/env node
// `node bench/handover.js [--quick] [--name ho] [--keep]`: agent upgrades, restarts and crashes under load
// (issue 20), each event with its own workload and a capture on both node uplinks. Writes
// bench/results/handover/DATE.{md,json}. Root, after `npm run build`; about 6 minutes (--quick: 3).
//
// Workload (test/helpers/handover-load.js in the client pod on node-a): long-lived TCP connections to an echo pod
// on node-b through HBONE, each exchanging a line every 100 ms; a new HTTP connection every 10 ms and HTTP
// keep-alive clients to an HTTP pod on node-b under a STRICT PeerAuthentication. Counted per event: long-lived
// connections broken, new connections and keep-alive requests failed, TCP segments with payload between the
// mesh pods that did not go to or from 15008 (plaintext), and what the kernel holds afterwards.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
if (!fs.existsSync(path.join(DIST, 'test', 'helpers', 'handover-load.js'))) {
  console.error('bench/handover: dist/ is missing; run "npm run build" first');
  process.exit(2);
}
const lab = require(path.join(DIST, 'src', 'lab'));
const control = require(path.join(DIST, 'src', 'lab', 'agent-control'));
const cp = require(path.join(DIST, 'src', 'lab', 'controlplane'));
const { labExecCapture } = require(path.join(DIST, 'src', 'lab', 'exec-capture'));
const { procAlive, readState, writeState } = require(path.join(DIST, 'src', 'lab', 'state'));
const { IF, netnsPath } = require(path.join(DIST, 'src', 'lab', 'paths'));
const { unixRequest } = require(path.join(DIST, 'src', 'enroll', 'client'));
const { Capture } = require(path.join(DIST, 'test', 'helpers', 'pcap'));
const LOAD = path.join(DIST, 'test', 'helpers', 'handover-load.js');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const QUICK = argv.includes('--quick');
const LAB = opt('name', 'ho');
const KEEP = argv.includes('--keep');
const LONG = QUICK ? 20 : 50;
const SETTLE_MS = QUICK ? 2000 : 4000;
const log = (m) => console.error(`[handover ${new Date().toISOString().slice(11, 19)}] ${m}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const MANIFEST = `
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { nodeName: node-a, serviceAccountName: client, containers: [{ name: main, command: ["sleep", "infinity"] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: echo, namespace: default, labels: { app: echo } }
spec: { nodeName: node-b, serviceAccountName: echo, containers: [{ name: main, command: ["nodemesh", "sample", "echo", "--port", "9000"] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: default, labels: { app: web } }
spec: { nodeName: node-b, serviceAccountName: web, containers: [{ name: main, command: ["nodemesh", "sample", "http", "--port", "8080"] }] }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: default }
spec: { selector: { matchLabels: { app: web } }, mtls: { mode: STRICT } }
`;

let tmp;
let state;

const ip = (name) => state.pods.find((p) => p.name === name).ip;
const node = (name) => readState(LAB).nodes.find((n) => n.name === name);

async function adminJson(nodeName, p, sock = node(nodeName).adminSocket) {
  const r = await unixRequest(sock, 'GET', p);
  return JSON.parse(r.body);
}

/** Runs `event` under the workload; returns the counts and what the event reported. */
async function underLoad(name, event) {
  log(`${name}: workload starting`);
  const stop = path.join(tmp, `stop-${Date.now()}`);
  const caps = await Promise.all(state.nodes.map((n) => Capture.start(netnsPath(n.netns), IF.nodeUplink, path.join(tmp, `${n.name}-${Date.now()}.pcap`))));
  const load = labExecCapture(
    LAB,
    'client',
    [process.execPath, LOAD, '--long', `${ip('echo')}:9000`, '--long-count', String(LONG), '--connect', `${ip('web')}:8080`, '--connect-every-ms', '10', '--keepalive', `${ip('web')}:8080`, '--keepalive-count', '4', '--stop-file', stop, '--max-seconds', '900'],
    1_000_000,
  );
  await sleep(2000);
  const t0 = Date.now();
  let note = '';
  try {
    note = (await event()) ?? '';
  } finally {
    await sleep(SETTLE_MS);
    fs.writeFileSync(stop, '');
  }
  const out = await load;
  const segs = (await Promise.all(caps.map((c) => c.stop()))).flat();
  const r = JSON.parse(out.stdout.trim().split('\n').at(-1));
  const podIps = new Set(state.pods.map((p) => p.ip));
  const clear = segs.filter((s) => podIps.has(s.src) && podIps.has(s.dst) && s.srcPort !== 15008 && s.dstPort !== 15008 && s.payload.length > 0);
  const row = {
    event: name,
    seconds: r.seconds,
    eventSeconds: (Date.now() - t0) / 1000,
    long: { opened: r.long.opened, broken: r.long.failed, lines: r.long.lines },
    connects: { ok: r.connects.ok, failed: r.connects.failed },
    keepalive: { ok: r.keepalive.ok, failed: r.keepalive.failed },
    plaintextSegments: clear.length,
    // the first two of each kind: long-lived breaks alone would fill the column
    errors: [...r.long.errors.slice(0, 2), ...r.connects.errors.slice(0, 2), ...r.keepalive.errors.slice(0, 2)],
    note,
  };
  log(`${name}: long ${row.long.broken}/${row.long.opened} broken, connects ${row.connects.failed}/${row.connects.ok + row.connects.failed} failed, keep-alive ${row.keepalive.failed}/${row.keepalive.ok + row.keepalive.failed} failed, ${row.plaintextSegments} plaintext segments${note ? `; ${note}` : ''}`);
  return row;
}

/** Waits for agents that handed over to finish draining (their connections ended with the workload). */
async function drainedOut() {
  const refs = readState(LAB).nodes.flatMap((n) => n.draining ?? []);
  const deadline = Date.now() + 30_000;
  while (refs.some((r) => procAlive(r)) && Date.now() < deadline) await sleep(200);
  return refs.filter((r) => procAlive(r)).length;
}

/** What the kernel holds for the lab after an event: one agent's state, no leftovers. */
async function kernelState() {
  const problems = [];
  for (const n of readState(LAB).nodes) {
    const dump = await adminJson(n.name, '/config_dump');
    const pods = state.pods.filter((p) => p.node === n.name).length;
    const entries = (m) => dump.datapath.maps.find((x) => x.name === m).entries;
    if (entries('nm_pods') !== pods) problems.push(`${n.name}: nm_pods has ${entries('nm_pods')} entries for ${pods} pods`);
    if (entries('nm_steer') !== pods) problems.push(`${n.name}: nm_steer has ${entries('nm_steer')} entries for ${pods} pods`);
    if (entries('nm_own_flows') !== 0) problems.push(`${n.name}: nm_own_flows has ${entries('nm_own_flows')} entries`);
    const links = dump.datapath.programs.filter((p) => p.attachType === 'sk_lookup').length;
    if (links !== pods) problems.push(`${n.name}: ${links} sk_lookup links for ${pods} pods`);
    const pins = fs.readdirSync(path.join(n.pinRoot, 'links')).filter((f) => f.startsWith('sk_lookup-')).length;
    if (pins !== pods) problems.push(`${n.name}: ${pins} pinned sk_lookup links for ${pods} pods`);
  }
  for (const p of state.pods) {
    const out = execFileSync('nsenter', [`--net=${netnsPath(p.netns)}`, 'ss', '-Hltn'], { encoding: 'utf8' });
    const l = out.split('\n').filter(Boolean).map((x) => x.trim().split(/\s+/)[3]).filter((a) => /:1500[168]$/.test(a));
    if (l.length !== 6 || new Set(l).size !== 6) problems.push(`${p.name}: listeners ${l.join(' ')}`);
  }
  return problems;
}

async function spawnSuccessor(nodeName) {
  const st = readState(LAB);
  const n = st.nodes.find((x) => x.name === nodeName);
  const a = await control.spawnAgent(st, n, st.agentLogLevel);
  return { n, a, own: path.join(n.stateDir, `admin-${a.ref.pid}.sock`) };
}

async function role(sock) {
  try {
    return (await adminJson(null, '/config_dump', sock)).agent.role;
  } catch {
    return null;
  }
}

const EVENTS = [
  ['upgrade ×3, node-a and node-b in turn', async () => {
    const took = [];
    for (let i = 0; i < 3; i++) {
      for (const n of ['node-a', 'node-b']) {
        const t = Date.now();
        await lab.upgradeAgent(LAB, n);
        took.push(Date.now() - t);
        await sleep(QUICK ? 1000 : 3000);
      }
    }
    return `each upgrade ready in ${Math.min(...took)}–${Math.max(...took)} ms`;
  }],
  ['SIGTERM + start, node-a (client side)', async () => {
    await control.killAgent(LAB, 'node-a', 'SIGTERM', 30_000);
    await control.startAgent(LAB, 'node-a');
  }],
  ['SIGTERM + start, node-b (server side)', async () => {
    await control.killAgent(LAB, 'node-b', 'SIGTERM', 30_000);
    await control.startAgent(LAB, 'node-b');
  }],
  ['SIGKILL + start, node-a', async () => {
    await control.killAgent(LAB, 'node-a', 'SIGKILL', 10_000, { onlyActive: true });
    await control.startAgent(LAB, 'node-a');
  }],
  ['SIGKILL + start, node-b', async () => {
    await control.killAgent(LAB, 'node-b', 'SIGKILL', 10_000, { onlyActive: true });
    await control.startAgent(LAB, 'node-b');
  }],
  ['new agent SIGKILLed during the handover, node-b', async () => {
    const old = node('node-b');
    const { a } = await spawnSuccessor('node-b');
    while ((await role(old.adminSocket)) !== 'handing-over') await sleep(20);
    process.kill(a.ref.pid, 'SIGKILL');
    const t = Date.now();
    while ((await role(old.adminSocket)) !== 'active') await sleep(20);
    return `the running agent resumed ${Date.now() - t} ms after the kill`;
  }],
  ['old agent SIGKILLed during the handover, node-b', async () => {
    const old = node('node-b');
    const { a, own } = await spawnSuccessor('node-b');
    while ((await role(old.adminSocket)) !== 'handing-over') await sleep(20);
    process.kill(old.agent.pid, 'SIGKILL');
    const t = Date.now();
    while ((await role(own)) !== 'active') await sleep(20);
    const st = readState(LAB);
    st.nodes.find((x) => x.name === 'node-b').agent = a.ref;
    writeState(st);
    return `the new agent served the node ${Date.now() - t} ms after the kill`;
  }],
  ['control plane down: upgrade node-a, then node-b', async () => {
    await cp.stopControlPlane(LAB);
    try {
      const took = [];
      for (const n of ['node-a', 'node-b']) {
        const t = Date.now();
        await lab.upgradeAgent(LAB, n);
        took.push(Date.now() - t);
        await sleep(1000);
      }
      const xds = (await adminJson('node-b', '/config_dump')).xds;
      return `control plane down throughout; ready in ${took.join(' and ')} ms with the saved config (configSource ${xds.configSource}, connected ${xds.connected}) and saved certificates`;
    } finally {
      await cp.startControlPlane(LAB);
    }
  }],
  ['control plane down: SIGTERM + start, node-b', async () => {
    await cp.stopControlPlane(LAB);
    try {
      await control.killAgent(LAB, 'node-b', 'SIGTERM', 30_000);
      const t = Date.now();
      await control.startAgent(LAB, 'node-b');
      const xds = (await adminJson('node-b', '/config_dump')).xds;
      return `control plane down throughout; ready ${Date.now() - t} ms after its start (configSource ${xds.configSource}, connected ${xds.connected})`;
    } finally {
      await cp.startControlPlane(LAB);
    }
  }],
];

async function main() {
  if (process.getuid() !== 0) throw new Error('needs root');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-handover-bench-'));
  const file = path.join(tmp, 'lab.yaml');
  fs.writeFileSync(file, MANIFEST);
  log(`lab up ${LAB}`);
  state = await lab.labUp({ file, lab: LAB });
  const rows = [];
  try {
    for (const [name, event] of EVENTS) {
      const row = await underLoad(name, event);
      row.stillDraining = await drainedOut();
      row.kernel = await kernelState();
      if (row.kernel.length) log(`${name}: kernel state: ${row.kernel.join('; ')}`);
      rows.push(row);
    }
  } finally {
    if (!KEEP) await lab.labDown({ lab: LAB }).catch((e) => log(`lab down failed: ${e.message}`));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  writeResults(rows);
}

function writeResults(rows) {
  const git = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const when = new Date();
  const stamp = when.toISOString().slice(0, 16).replace(/[T:]/g, '-');
  const dir = path.join(__dirname, 'results', 'handover');
  fs.mkdirSync(dir, { recursive: true });
  const lines = [
    `# Agent handover under load (${when.toISOString().slice(0, 16).replace('T', ' ')}, git ${git}${QUICK ? ', --quick' : ''})`,
    '',
    `${os.cpus().length} CPUs (${os.cpus()[0].model}), Linux ${os.release()}, Node ${process.version}; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine).`,
    `Workload per event: ${LONG} long-lived connections through HBONE (a line every 100 ms), a new HTTP connection every 10 ms and 4 keep-alive clients to a STRICT pod; capture on both node uplinks.`,
    '',
    '| event | long-lived broken | new connections failed | keep-alive requests failed | plaintext segments between mesh pods | kernel afterwards | notes |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.event} | ${r.long.broken}/${r.long.opened} | ${r.connects.failed} of ${r.connects.ok + r.connects.failed} | ${r.keepalive.failed} of ${r.keepalive.ok + r.keepalive.failed} | ${r.plaintextSegments} | ${r.kernel.length ? r.kernel.join('; ') : 'one agent\'s state, nothing left'} | ${[r.note, r.errors.length ? `first errors: ${r.errors.map((e) => e.replace(/^\S+ /, '')).join(', ')}` : ''].filter(Boolean).join('; ')} |`,
    ),
    '',
  ];
  fs.writeFileSync(path.join(dir, `${stamp}.md`), lines.join('\n'));
  fs.writeFileSync(path.join(dir, `${stamp}.json`), JSON.stringify({ git, when: when.toISOString(), quick: QUICK, rows }, null, 2));
  process.stdout.write(lines.join('\n'));
  log(`wrote bench/results/handover/${stamp}.md`);
}

main().catch(async (err) => {
  console.error(err);
  if (!KEEP) await lab.labDown({ lab: LAB }).catch(() => undefined);
  process.exit(1);
});
