#!/usr/bin/env node
// "xDS scale": a real control plane (its own process, file config) and agents' xDS sides (their own
// processes, bench/lib/xds-scale-agent.js) at 1,000 / 10,000 / 50,000 Services and 20,000 pods. Measures the
// initial sync, the time a one-Service change takes to reach every agent, and the RSS of both. With
// --real-agents, also real agents (bench/lib/xds-scale-lab.js: a lab, datapath, telemetry, worker threads) at
// --real-services sizes, one lab per --real-agents concurrency.
//
//   node bench/xds-scale.js [--services=1000,10000,50000] [--pods=20000] [--agents=2] [--changes=5] [--quick]
//                           [--cpu-prof=DIR] [--before=DIR [--before-label=TEXT]] [--real-agents=1,2] [--real-services=10000] [--real-deadline-s=240]
//
// --before=DIR: another build of nodemesh (a checkout with dist/ built), measured in the same run: its agents'
// xDS sides beside this build's on the same control plane and pushes, and its real agents the same way.
//
// --cpu-prof writes a V8 profile of the control plane and of each agent into DIR (fold with profile-summary.js;
// the md says when the changes began in each process, for --skip-s). Not for published runs: the sampler costs.
//
// Needs `npm run build`. Loopback only. Bounded: each size has a deadline (--deadline-s, default 600 s).
// Writes bench/results/xds-scale/YYYY-MM-DD-HH-MM.{json,md} (with --cpu-prof, into DIR instead).
'use strict';

const { spawn, fork, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { writeConfig, changeService, serviceRef } = require('./lib/xds-scale-config');
const { measureLab } = require('./lib/xds-scale-lab');
// The V8 flags agents run with (the lab's, src/lab/up.ts).
const { AGENT_NODE_FLAGS } = require('../dist/src/lab/up');

const root = path.join(__dirname, '..');
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const quick = args.quick === 'true';
const sizes = (args.services ?? (quick ? '1000,10000' : '1000,10000,50000')).split(',').map(Number);
const pods = Number(args.pods ?? 20000);
const agents = Number(args.agents ?? 2);
const changes = Number(args.changes ?? (quick ? 3 : 5));
const deadlineMs = Number(args['deadline-s'] ?? 600) * 1000;
const cpuProfDir = args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined;
const beforeRoot = args.before ? path.resolve(args.before) : undefined;
/** What the --before build is (its git commit, unless --before-label says better: a copy of a checkout has none). */
const beforeLabel = () => args['before-label'] ?? `git ${git(beforeRoot)}`;
/** The builds measured: this one, and --before's. */
const builds = [{ build: 'this', root }, ...(beforeRoot ? [{ build: 'before', root: beforeRoot }] : [])];
const realConcurrency = args['real-agents'] ? args['real-agents'].split(',').map(Number) : [];
const realSizes = (args['real-services'] ?? '10000').split(',').map(Number);
/** How long real agents may take to go quiet before they are measured anyway. */
const realDeadlineMs = Number(args['real-deadline-s'] ?? 240) * 1000;
const profFlags = (name) => (cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
  return { rssMB: Math.round(kb('VmRSS') / 1024), peakMB: Math.round(kb('VmHWM') / 1024) };
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

/** Resolves with the next IPC message of `type` from `child`, or rejects after `ms`. */
/** The child's next message of `type`; fails after `ms`, or at once when the child has exited. */
function nextMessage(child, type, ms, what) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      child.off('message', on);
      child.off('exit', gone);
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const on = (m) => {
      if (m.type !== type) return;
      done();
      resolve(m);
    };
    const gone = (code, signal) => {
      done();
      reject(new Error(`the process exited (${signal ?? `code ${code}`}) while waiting for ${what}`));
    };
    if (child.exitCode !== null || child.signalCode !== null) return gone(child.exitCode, child.signalCode);
    child.on('message', on);
    child.on('exit', gone);
  });
}

/** Sends to a child that may have exited: the wait for its answer then fails, instead of the send throwing later. */
function tell(child, msg) {
  if (child.connected) child.send(msg);
}

async function metric(port, name) {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  return text.split('\n').filter((l) => l.startsWith(name));
}

async function runSize(services) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nm-xds-scale-${services}-`));
  const children = [];
  const deadline = setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
  }, deadlineMs);
  try {
    const plan = writeConfig(dir, { services, pods });
    const yamlMB = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0) / 1e6;
    const xdsPort = await freePort();
    const metricsPort = await freePort();
    const t0 = now();
    const cp = spawn(
      process.execPath,
      [...profFlags(`controlplane-${services}`), path.join(root, 'dist/src/cli/main.js'), 'controlplane', '--config', dir, '--xds-address', `127.0.0.1:${xdsPort}`, '--metrics-port', String(metricsPort), '--dashboard-address', 'off', '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(cp);
    let cpErr = '';
    cp.stderr.on('data', (d) => (cpErr = (cpErr + d).slice(-4000)));
    // Ready when its metrics answer and it has built a snapshot from the files.
    for (;;) {
      if (cp.exitCode !== null) throw new Error(`control plane exited: ${cpErr}`);
      const built = await metric(metricsPort, 'nodemesh_xds_resources{type="cds"}').catch(() => []);
      if (built.length && Number(built[0].split(' ')[1]) >= services) break;
      await sleep(100);
    }
    const loadedMs = now() - t0;
    const resources = Object.fromEntries((await metric(metricsPort, 'nodemesh_xds_resources{')).map((l) => [l.slice(l.indexOf('"') + 1, l.lastIndexOf('"')), Number(l.split(' ')[1])]));
    const cpLoaded = rssOf(cp.pid);

    // Agents on distinct nodes, started together once the control plane has its snapshot.
    const ta = now();
    const procs = [];
    for (const b of builds) {
      for (let i = 0; i < agents; i++) {
        const stateDir = fs.mkdtempSync(path.join(dir, `agent-${b.build}-${i}-`));
        const a = fork(path.join(__dirname, 'lib/xds-scale-agent.js'), [`127.0.0.1:${xdsPort}`, `node-${i}`, stateDir, b.root], { execArgv: [...AGENT_NODE_FLAGS, '--expose-gc', ...profFlags(`agent-${services}-${b.build}-${i}`)], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        a.build = b.build;
        // A send racing the agent's exit: the wait for its answer reports the exit (nextMessage).
        a.on('error', () => {});
        children.push(a);
        procs.push(a);
      }
    }
    const synced = await Promise.all(procs.map((a) => nextMessage(a, 'synced', deadlineMs, 'an agent\'s initial sync')));
    const syncMs = synced.map((m) => m.at - ta);
    const clusters = synced[0].clusters;
    await sleep(500);

    // One-Service changes, spread over the Services: each must reach every agent.
    const changesFrom = { controlPlaneS: Math.round((now() - t0) / 1000), agentsS: Math.round((now() - ta) / 1000) };
    const changeMs = [];
    let changeError;
    try {
      for (let k = 0; k < changes; k++) {
        const i = Math.floor(((k + 0.5) * services) / changes);
        const ref = serviceRef(plan, i);
        const port = 8081 + (k % 2);
        const seen = procs.map((a) => nextMessage(a, 'seen', 60_000, `change ${k} (svc-${i})`));
        for (const a of procs) tell(a, { type: 'watch', cluster: ref.cluster, port, id: k });
        const tc = now();
        changeService(dir, plan, i, k);
        const at = await Promise.all(seen);
        changeMs.push(Math.max(...at.map((m) => m.at)) - tc);
        // Put it back (8080) so the next change is a change for every variant; wait for it too.
        const back = procs.map((a) => nextMessage(a, 'seen', 60_000, `revert ${k}`));
        for (const a of procs) tell(a, { type: 'watch', cluster: ref.cluster, port: 8080, id: `r${k}` });
        fs.writeFileSync(path.join(dir, `services-${String(Math.floor(i / 500)).padStart(4, '0')}.yaml`), fs.readFileSync(path.join(dir, `services-${String(Math.floor(i / 500)).padStart(4, '0')}.yaml`), 'utf8').replace(/targetPort: 808[12]/, 'targetPort: 8080'));
        await Promise.all(back);
        await sleep(200);
      }
    } catch (err) {
      // Recorded, with what was measured before it: a change that does not arrive in 60 s is a result too.
      changeError = err.message;
    }

    const agentRss = [];
    for (const a of procs) {
      const r = nextMessage(a, 'rss', 10_000, 'agent RSS');
      tell(a, { type: 'rss' });
      const m = await r;
      agentRss.push({ build: a.build, ...rssOf(a.pid), heapUsedMB: Math.round(m.heapUsed / 1048576), heapTotalMB: Math.round(m.heapTotal / 1048576), externalMB: Math.round(m.external / 1048576) });
    }
    const cpAfter = rssOf(cp.pid);
    const translate = await metric(metricsPort, 'nodemesh_xds_translate_seconds_sum');
    const exited = children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r))));
    for (const a of procs) tell(a, { type: 'stop' });
    cp.kill('SIGTERM');
    // Let them exit on their own (a profile is written at exit), bounded.
    await Promise.race([Promise.all(exited), sleep(cpuProfDir ? 60_000 : 5_000)]);
    const real = [];
    if (realSizes.includes(services)) {
      for (const b of builds) {
        for (const concurrency of realConcurrency) {
          process.stderr.write(`${services} Services: real agents of ${b.build} (${b.root})\n`);
          try {
            real.push({ build: b.build, ...(await measureLab({ root: b.root, services, pods, concurrency, deadlineMs: realDeadlineMs, log: (l) => process.stderr.write(`${l}\n`) })) });
          } catch (err) {
            real.push({ build: b.build, concurrency, error: err.message });
          }
        }
      }
    }
    const out = {
      services,
      pods,
      agents,
      clusters,
      yamlMB: Number(yamlMB.toFixed(1)),
      resources,
      controlPlaneLoadMs: Math.round(loadedMs),
      initialSyncMs: syncMs.map(Math.round),
      // CPU each agent spent from starting its ADS client to its first complete config (in procs' order).
      initialSyncCpuMs: synced.map((m, i) => ({ build: procs[i].build, ms: m.cpuMs === undefined ? undefined : Math.round(m.cpuMs) })),
      changeMs: changeMs.map(Math.round),
      changeError,
      changeMedianMs: Math.round(median(changeMs)),
      changeMaxMs: Math.round(Math.max(...changeMs)),
      controlPlaneRssMB: { loaded: cpLoaded.rssMB, afterChanges: cpAfter.rssMB, peak: cpAfter.peakMB },
      agentRssMB: agentRss,
      translateSecondsSum: translate[0]?.split(' ')[1],
      realAgents: real,
      ...(cpuProfDir ? { cpuProfile: { dir: cpuProfDir, changesFrom } } : {}),
    };
    process.stderr.write(`${JSON.stringify(out)}\n`);
    return out;
  } finally {
    clearTimeout(deadline);
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function git(at = root) {
  try {
    return execFileSync('git', ['-C', at, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main() {
  const results = [];
  for (const n of sizes) {
    try {
      results.push(await runSize(n));
    } catch (err) {
      results.push({ services: n, pods, error: err.message });
      process.stderr.write(`${n} Services: ${err.message}\n`);
    }
  }
  const d = new Date();
  const stamp = d.toISOString().slice(0, 16).replace('T', '-').replace(':', '-');
  const env = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, kernel: os.release(), node: process.version, load: os.loadavg().map((x) => x.toFixed(1)).join(' ') };
  // A profiled run is not a result: it goes beside its profiles.
  const outDir = cpuProfDir ?? path.join(__dirname, 'results', 'xds-scale');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, `${stamp}.json`), JSON.stringify({ date: d.toISOString(), git: git(), before: beforeRoot && beforeLabel(), env, pods, agents, changes, results }, null, 2) + '\n');
  /** Per build, `a / b` of each agent's value. */
  const perBuild = (xs, f) => builds.map((b) => `${builds.length > 1 ? `${b.build}: ` : ''}${xs.filter((x) => (x.build ?? 'this') === b.build).map(f).join(' / ')}`).join('; ');
  const rows = results.map((r) =>
    r.error
      ? `| ${r.services} | – | – | – | – | – | failed: ${r.error} |`
      : `| ${r.services} | ${r.controlPlaneLoadMs} | ${r.initialSyncMs.join(' / ')} | ${r.changeMs.length ? `${r.changeMedianMs} (max ${r.changeMaxMs})` : '–'}${r.changeError ? ` (${r.changeError})` : ''} | ${r.controlPlaneRssMB.afterChanges} (peak ${r.controlPlaneRssMB.peak}) | ${perBuild(r.agentRssMB, (a) => a.rssMB)} | ${r.yamlMB} MB YAML, ${Object.values(r.resources).reduce((a, b) => a + b, 0)} resources, ${r.clusters} clusters per agent |`,
  );
  const realRows = results.flatMap((r) =>
    (r.realAgents ?? []).map((x) =>
      x.error
        ? `| ${r.services} | ${x.build} | ${x.concurrency} | – | – | – | – | failed: ${x.error} |`
        : `| ${r.services} | ${x.build} | ${x.concurrency} | ${x.agents.map((a) => a.idle.rssMB).join(' / ')} | ${x.agents.map((a) => a.settled.rssMB).join(' / ')} (${x.quiet ? '' : 'still busy at '}${x.settledS} s) | ${x.agents.map((a) => `${a.steady.rssMB} (anon ${a.steady.anonMB})`).join(' / ')} | ${x.agents.map((a) => a.steady.peakMB).join(' / ')} | ${x.agents.map((a) => `${a.vips} VIPs, ${a.workers} workers`).join(' / ')} |`,
    ),
  );
  const realMd = realRows.length
    ? `
Real agents (\`nodemesh lab\`: two nodes, node-0 and node-1 of the config, one pod each; agents with their datapath, mesh telemetry and tracing as the lab runs them, \`--concurrency\` threads), fed the same config through the lab control plane's directory. Settled: 10 s without CPU; steady: 30 s later. RSS includes file-backed pages (the node binary, ~45 MB, shared between processes).

| Services | build | concurrency | RSS MB at 0 Services | settled | steady | peak (VmHWM) | held |
|---|---|---|---|---|---|---|---|
${realRows.join('\n')}
`
    : '';
  const md = `# xDS scale (${d.toISOString().slice(0, 16).replace('T', ' ')} UTC, git ${git()})

${env.cpus} CPUs (${env.cpu}), Linux ${env.kernel}, Node ${env.node}; load average at the end ${env.load} (shared machine).
${beforeRoot ? `Builds: this (git ${git()}) and before (${beforeRoot}, ${beforeLabel()}), measured side by side.\n` : ''}${pods} pods on 100 nodes, ${agents} agents per build (delta xDS, each its own process with the agents' V8 flags \`${AGENT_NODE_FLAGS.join(' ')}\`: the agent's ADS client, proxy stores and saved config, no datapath), one control plane process reading the config from files.
A change: one Service's targetPort edited in its file (500 Services per file), timed from the write until every agent's endpoints show it (file watch 40 ms and push debounce 30 ms included); ${changes} changes per size.

| Services | control plane load ms | initial sync ms (per agent) | one-Service change ms, median | control-plane RSS MB | agent RSS MB | notes |
|---|---|---|---|---|---|---|
${rows.join('\n')}
${results.some((r) => r.initialSyncCpuMs) ? `\nCPU ms per agent from starting its ADS client to its first complete config: ${results.filter((r) => r.initialSyncCpuMs).map((r) => `${r.services} Services: ${perBuild(r.initialSyncCpuMs, (a) => a.ms)}`).join('; ')}.\n` : ''}${realMd}`;
  fs.writeFileSync(path.join(outDir, `${stamp}.md`), md);
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
