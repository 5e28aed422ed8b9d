// Real agents for the "xDS scale" bench: `nodemesh lab up` with two nodes (node-0, node-1: nodes of the
// synthetic config, so each agent gets its part of the workload directory and its inbound listener), one pod each,
// agents with their datapath, mesh telemetry, tracing and `--concurrency` threads; then the config's files are
// moved into the lab control plane's watched directory. Measures each agent's RSS once its CPU is quiet.
'use strict';

const { execFile } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { writeConfig } = require('./xds-scale-config');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const LAB_FILE = `${[0, 1]
  .map(
    (i) => `apiVersion: v1
kind: Pod
metadata: { name: p${i}, namespace: default, labels: { app: p${i} } }
spec:
  nodeName: node-${i}
  serviceAccountName: p${i}
  containers: [{ name: main, command: ["sleep", "infinity"] }]
`,
  )
  .join('---\n')}`;

function run(cli, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { timeout: timeoutMs, maxBuffer: 1 << 24 }, (err, stdout, stderr) => (err ? reject(new Error(`${args.slice(0, 2).join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

function status(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Math.round(Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) / 1024);
  return { rssMB: kb('VmRSS'), anonMB: kb('RssAnon'), fileMB: kb('RssFile'), peakMB: kb('VmHWM') };
}

/** CPU seconds of a process so far (user + system; /proc counts in USER_HZ, 100 on Linux). */
function cpuOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** GET on an agent's admin unix socket. */
function admin(socketPath, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`admin ${p} timed out`)));
  });
}

/**
 * One lab of real agents from the build at `root` (its dist/src/cli/main.js) with `concurrency` threads, fed
 * `services` Services and `pods` pods. Returns per agent: RSS at 0 Services, then once its CPU stayed quiet
 * (settled), and `steadyS` later; and what it holds (VIPs, clusters) from /config_dump, read after the RSS.
 */
async function measureLab({ root, services, pods, concurrency, deadlineMs, steadyS = 30, log = () => {} }) {
  const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
  const lab = `xs${process.pid.toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`.slice(0, 10);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-xds-scale-lab-'));
  const labFile = path.join(tmp, 'lab.yaml');
  fs.writeFileSync(labFile, LAB_FILE);
  const t0 = Date.now();
  try {
    await run(cli, ['lab', 'up', '-f', labFile, '--name', lab, `--agent-arg=--concurrency=${concurrency}`], 180_000);
    const state = JSON.parse(fs.readFileSync(`/run/nodemesh/lab/${lab}/state.json`, 'utf8'));
    const agents = state.nodes.map((n) => ({ node: n.name, pid: n.agent.pid, adminSocket: n.adminSocket }));
    await sleep(5000);
    const idle = agents.map((a) => status(a.pid));
    const cfg = path.join(tmp, 'config');
    writeConfig(cfg, { services, pods });
    const into = state.controlPlane.configDir;
    // pods first, then Services: renames into the watched directory, each file whole
    const files = fs.readdirSync(cfg).sort((a, b) => (a.startsWith('pods') ? 0 : 1) - (b.startsWith('pods') ? 0 : 1) || a.localeCompare(b));
    for (const f of files) fs.renameSync(path.join(cfg, f), path.join(into, `scale-${f}`));
    const fed = Date.now();
    // Settled: every agent has done the config's work (the control plane takes a while to read the files, and
    // decoding 10,000 Services costs an agent seconds of CPU: at least 0.1 s per 1,000 Services), then 10 s in a row
    // in which no agent used more than 0.1 s of CPU per 2 s (a report, a heartbeat).
    const first = agents.map((a) => cpuOf(a.pid));
    const work = Math.min(1, services / 10_000);
    let quiet = 0;
    let last = first;
    let settledOk = true;
    for (;;) {
      // An agent that never goes quiet (a build whose periodic work grows with the config) is measured at the
      // deadline, and said to be so.
      if (Date.now() - fed > deadlineMs) {
        settledOk = false;
        break;
      }
      await sleep(2000);
      const now = agents.map((a) => cpuOf(a.pid));
      const worked = now.every((c, i) => c - first[i] >= work);
      quiet = worked && now.every((c, i) => c - last[i] <= 0.1) ? quiet + 1 : 0;
      last = now;
      if (quiet >= 5) break;
    }
    const settledS = Math.round((Date.now() - fed) / 1000);
    const settled = agents.map((a) => status(a.pid));
    log(`  concurrency ${concurrency}: ${settledOk ? 'settled' : 'still busy'} after ${settledS} s, RSS ${settled.map((s) => s.rssMB).join(' / ')} MB; ${steadyS} s more`);
    await sleep(steadyS * 1000);
    const steady = agents.map((a) => status(a.pid));
    const held = [];
    for (const a of agents) {
      const dump = JSON.parse(await admin(a.adminSocket, '/config_dump'));
      held.push({ vips: dump.services.vips.length, clusters: dump.services.clusters.length, workers: (dump.workers ?? []).length });
    }
    return { concurrency, agents: agents.map((a, i) => ({ node: a.node, idle: idle[i], settled: settled[i], steady: steady[i], ...held[i] })), settledS, quiet: settledOk, labUpS: Math.round((fed - t0) / 1000) };
  } finally {
    await run(cli, ['lab', 'down', '--name', lab], 120_000).catch((e) => log(`lab down ${lab}: ${e.message}`));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

module.exports = { measureLab };
