#!/usr/bin/env node
// Runs the compiled test tiers with node's test runner: unit (no root, no network),
// integration (in-process agent pieces, loopback only), e2e (root, real eBPF in lab namespaces), k8s (root: a real
// kube-apiserver 1.20 over etcd on loopback, built by scripts/kube-apiserver.sh; real CNI plugins in test namespaces),
// fuzz (every fuzz target under libFuzzer for a share of a bounded budget, test/fuzz/).
//
//   node scripts/run-tests.js [--fresh-host] [--fuzz-seconds=N] [tier ...]
//
// --fuzz-seconds=N (or NODEMESH_FUZZ_SECONDS): the fuzz tier's total fuzzing time, shared by its targets
// (default 90); the tier prints executions and findings per target.
//
// --fresh-host (what `bash scripts/dev.sh test`, and so CI, uses): first refuses to start if the host
// holds lab or agent state this run did not create (netns, pins, cgroups, programs, lab dirs); then
// runs every tier inside a private mount namespace where bpffs and cgroup v2 are unmounted, so the
// suite mounts them itself exactly as on a new machine, and what earlier runs left mounted cannot
// help it; afterwards it fails if the run left anything behind.
//
// NODEMESH_REQUIRE_E2E=1 (set by dev.sh test) or CI=true: a skipped test is a failure, named with
// the reason it gave (not root, no BTF, no gcc, ...). Each tier prints how many tests ran.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const fresh = args.includes('--fresh-host');
const tiers = args.filter((a) => !a.startsWith('--'));
if (tiers.length === 0) tiers.push('unit', 'integration', 'e2e', 'k8s', 'fuzz');
const fuzzSecondsArg = args.find((a) => a.startsWith('--fuzz-seconds='));
if (fuzzSecondsArg) {
  const n = Number(fuzzSecondsArg.slice('--fuzz-seconds='.length));
  if (!(n > 0)) {
    process.stderr.write(`run-tests: --fuzz-seconds needs a number of seconds above 0, got ${fuzzSecondsArg}\n`);
    process.exit(2);
  }
  process.env.NODEMESH_FUZZ_SECONDS = String(n);
}
const required = process.env.NODEMESH_REQUIRE_E2E === '1' || process.env.CI === 'true';
const INSIDE = 'NODEMESH_FRESH_HOST_INSIDE';

function say(msg) {
  process.stderr.write(`\x1b[1m==> ${msg}\x1b[0m\n`);
}
function fail(msg) {
  process.stderr.write(`\x1b[1;31mrun-tests: ${msg}\x1b[0m\n`);
  process.exit(1);
}

function mounts() {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      return { target: f[1].replace(/\\040/g, ' '), type: f[2] };
    });
}

function listDir(dir) {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Lab and agent state on this host: network namespaces, lab dirs, cgroups, bpf pins and loaded
 * nodemesh programs. Reads only; sees what the current mount namespace shows.
 */
function hostState() {
  const found = [];
  const netns = listDir('/run/netns').filter((n) => n.startsWith('nm-'));
  if (netns.length) found.push(`network namespaces in /run/netns: ${netns.join(' ')}`);
  const kube = listDir(os.tmpdir()).filter((n) => n.startsWith('nodemesh-kube-'));
  if (kube.length) found.push(`k8s tier API servers' dirs in ${os.tmpdir()}: ${kube.join(' ')}`);
  const labs = listDir('/run/nodemesh/lab');
  if (labs.length) found.push(`lab dirs in /run/nodemesh/lab: ${labs.join(' ')}`);
  for (const m of mounts()) {
    if (m.type === 'cgroup2') {
      const cgs = listDir(m.target).filter((n) => n.startsWith('nodemesh-lab-') || n.startsWith('nm-t-'));
      if (cgs.length) found.push(`cgroups in ${m.target}: ${cgs.join(' ')}`);
    }
    if (m.type === 'bpf') {
      const pins = listDir(path.join(m.target, 'nodemesh'));
      if (pins.length) found.push(`bpf pins in ${path.join(m.target, 'nodemesh')}: ${pins.join(' ')}`);
    }
  }
  try {
    const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }));
    const ours = progs.filter((p) => typeof p.name === 'string' && p.name.startsWith('nm_'));
    if (ours.length) found.push(`loaded BPF programs: ${ours.map((p) => `${p.id}:${p.name}`).join(' ')}`);
  } catch {
    // no bpftool (not set up yet) or not root: the other checks still hold
  }
  return found;
}

function refuseForeignState(when) {
  const found = hostState();
  if (found.length === 0) return;
  const msg = `${when}, this host holds lab or agent state that this run did not create:\n  ${found.join('\n  ')}\n` +
    'remove it first ("nodemesh lab down --name NAME" for a lab, "ip netns del", rmdir the cgroups, unmount or rm the pins), ' +
    'or run the suite on a clean machine';
  if (process.env.NODEMESH_FOREIGN_STATE === 'warn') process.stderr.write(`run-tests: warning: ${msg}\n`);
  else fail(msg);
}

/** Inside the private mount namespace: unmount every bpffs and cgroup v2, deepest first. */
function unmountDatapathFilesystems() {
  const targets = mounts()
    .filter((m) => m.type === 'bpf' || m.type === 'cgroup2')
    .map((m) => m.target)
    .sort((a, b) => b.length - a.length);
  for (const t of targets) {
    try {
      execFileSync('umount', [t], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      execFileSync('umount', ['-l', t], { stdio: 'inherit', timeout: 10_000 });
    }
  }
  const left = mounts().filter((m) => m.type === 'bpf' || m.type === 'cgroup2');
  if (left.length) fail(`could not unmount ${left.map((m) => `${m.type} at ${m.target}`).join(', ')} in the private mount namespace`);
  say(`fresh host view: private mount namespace, ${targets.length ? `unmounted ${targets.join(', ')}` : 'nothing to unmount'}; bpffs and cgroup v2 are not mounted`);
}

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

/** Totals and skipped tests from a TAP stream (node's tap reporter). */
function parseTap(text) {
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text) || [])[1] || 0);
  const skipped = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(?:not )?ok \d+ - (.*?) # (SKIP|TODO)\b ?(.*)$/.exec(line);
    if (m) skipped.push(`${m[1]} (${m[2].toLowerCase()}${m[3] ? `: ${m[3]}` : ''})`);
  }
  return { tests: num('tests'), pass: num('pass'), fail: num('fail'), cancelled: num('cancelled'), skipped: num('skipped'), todo: num('todo'), skippedNames: skipped };
}

/** The fuzz tier's per-target results (written by test/fuzz/fuzz.test.ts) as a table. */
function printFuzzSummary(file) {
  let s;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return;
  }
  say('fuzz targets: executions and findings');
  const row = (c) => c.map((x, i) => String(x).padEnd([16, 12, 8, 8, 8, 8][i] ?? 0)).join('');
  process.stderr.write(`${row(['target', 'executions', 'exec/s', 'corpus', 'new', 'edges', 'found'])}\n`);
  for (const r of s.results) {
    const found = r.outcome === 'ok' ? 'nothing' : `${r.outcome}: ${r.detail.split('\n')[0]} (${r.artifacts.map((a) => path.relative(root, a)).join(', ')})`;
    process.stderr.write(`${row([r.target, r.executions, Math.round(r.executions / Math.max(1, r.seconds)), r.corpus, r.newUnits, r.edges, found])}\n`);
  }
  for (const p of s.placeholders) process.stderr.write(`${row([p.target, '-', '-', '-', '-', '-', `placeholder: ${p.why}`])}\n`);
}

function runTier(tier) {
  const files = find(path.join(root, 'dist', 'test', tier));
  if (files.length === 0) return { tier, files: 0, missing: true };
  const tap = path.join(os.tmpdir(), `nodemesh-tests-${process.pid}-${tier}.tap`);
  const fuzzSummary = path.join(os.tmpdir(), `nodemesh-fuzz-${process.pid}.json`);
  say(`${tier}: ${files.length} file(s)`);
  const started = Date.now();
  // e2e tests share the kernel (pins, cgroups, netns names): run files one at a time.
  const res = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files],
    { stdio: 'inherit', cwd: root, env: tier === 'fuzz' ? { ...process.env, NODEMESH_FUZZ_SUMMARY: fuzzSummary } : process.env },
  );
  if (tier === 'fuzz') {
    printFuzzSummary(fuzzSummary);
    fs.rmSync(fuzzSummary, { force: true });
  }
  let counts;
  try {
    counts = parseTap(fs.readFileSync(tap, 'utf8'));
  } catch {
    counts = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0, skippedNames: [] };
  }
  fs.rmSync(tap, { force: true });
  return { tier, files: files.length, status: res.status ?? 1, seconds: (Date.now() - started) / 1000, ...counts };
}

function main() {
  if (fresh && !process.env[INSIDE]) {
    if (process.getuid() !== 0) fail('--fresh-host needs root (a private mount namespace, unmounting bpffs and cgroup v2)');
    refuseForeignState('before the run');
    const res = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, __filename, ...args], {
      stdio: 'inherit',
      env: { ...process.env, [INSIDE]: '1' },
    });
    process.exit(res.status ?? 1);
  }
  if (fresh) unmountDatapathFilesystems();

  const results = tiers.map(runTier);
  const problems = [];
  say('tests run per tier');
  const row = (c) => c.map((x, i) => String(x).padEnd(i === 0 ? 12 : 9)).join('');
  process.stderr.write(`${row(['tier', 'files', 'tests', 'pass', 'fail', 'skipped', 'todo', 'seconds'])}\n`);
  for (const r of results) {
    if (r.missing) {
      problems.push(`no compiled tests for tier "${r.tier}": run "npm run build" first`);
      process.stderr.write(`${row([r.tier, 0, '-', '-', '-', '-', '-', '-'])}\n`);
      continue;
    }
    process.stderr.write(`${row([r.tier, r.files, r.tests, r.pass, r.fail + r.cancelled, r.skipped, r.todo, r.seconds.toFixed(0)])}\n`);
    if (r.status !== 0 || r.fail > 0 || r.cancelled > 0) problems.push(`tier ${r.tier}: ${r.fail} failed, ${r.cancelled} cancelled (exit ${r.status})`);
    if (r.tests === 0) problems.push(`tier ${r.tier}: no test ran`);
    if (required && (r.skipped > 0 || r.todo > 0)) {
      problems.push(`tier ${r.tier}: ${r.skipped + r.todo} test(s) skipped where every test must run (CI / NODEMESH_REQUIRE_E2E):\n    ${r.skippedNames.join('\n    ')}`);
    }
  }
  if (fresh) {
    const left = hostState();
    if (left.length) problems.push(`the run left state behind:\n    ${left.join('\n    ')}`);
  }
  if (problems.length) fail(problems.join('\n'));
  say(`all tiers passed${required ? ', none skipped' : ''}${fresh ? ', on a fresh host view, nothing left behind' : ''}`);
}

main();
