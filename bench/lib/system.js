// Host-side plumbing for the harness: tools from apt, CPU pinning, CPU and memory readings of the
// processes under test, and a description of the machine for the results.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');

/** The Debian packages the harness runs, by the binary that proves each is installed. */
const TOOLS = { haproxy: 'haproxy', iperf3: 'iperf3', wrk: 'wrk', taskset: 'util-linux', nsenter: 'util-linux' };

function have(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/** apt-get install -y only what is missing (nothing runs when everything is there). */
function ensureTools(log) {
  const missing = [...new Set(Object.entries(TOOLS).filter(([bin]) => !have(bin)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')} (apt)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  }
}

/** Pins a process and all its threads to one CPU list (e.g. "1"). */
function pinProcess(pid, cpus) {
  execFileSync('taskset', ['-a', '-pc', String(cpus), String(pid)], { stdio: 'ignore' });
}

function cgroupPids(cg) {
  try {
    return fs.readFileSync(`${cg}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** usage_usec of a cgroup v2 (all its processes, kernel + user time), in seconds. */
function cgroupCpuSeconds(cg) {
  const m = /usage_usec (\d+)/.exec(fs.readFileSync(`${cg}/cpu.stat`, 'utf8'));
  return m ? Number(m[1]) / 1e6 : NaN;
}

const CLK_TCK = 100; // getconf CLK_TCK on Linux/x86-64

/** utime + stime of a process (all threads), in seconds, from /proc/PID/stat (10 ms ticks). */
function procCpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/**
 * VmRSS, VmHWM (peak since start or since the last resetPeakRss) and RssAnon in MB (2^20 bytes). RssAnon is the
 * process's private memory; VmRSS also counts file pages it maps, e.g. the ~45 MB of the node binary that
 * every Node process on the host shares from the page cache.
 */
function procMem(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return { rss_mb: kb('VmRSS'), hwm_mb: kb('VmHWM'), anon_mb: kb('RssAnon') };
}

/** Resets VmHWM to the current RSS (writing 5 to clear_refs), so each run reports its own peak. */
function resetPeakRss(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // an old kernel: the peak then covers the process's whole life, and the README says so
  }
}

function cmdOut(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'unknown';
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    mem_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    openssl: cmdOut('openssl', ['version']),
    node_openssl: process.versions.openssl,
    haproxy: cmdOut('haproxy', ['-v']).split('\n')[0],
    iperf3: cmdOut('iperf3', ['--version']).split('\n')[0],
    loadavg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

module.exports = { ensureTools, pinProcess, cgroupPids, cgroupCpuSeconds, procCpuSeconds, procMem, resetPeakRss, machine, have };
