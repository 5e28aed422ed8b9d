// Throwaway network namespaces, veth, cgroup and pin root for root-only datapath tests; destroy() removes all.
// Only touches what it creates: namespaces named nm-t-*, addresses in 198.18.0.0/15, never the root netns.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { findOrMountCgroup2 } from '../../src/util/cgroup2';
import { mountCommand } from '../../src/util/host-fs';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why root-only tests cannot run here, or null when they can. */
export function e2eSkipReason(): string | null {
  if (!isRoot()) return 'needs root (real eBPF, network namespaces, cgroups): run as root to exercise the datapath';
  if (!fs.existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF';
  return null;
}

export interface TestNs {
  name: string;
  path: string;
  ip: string;
}

export interface TestNet {
  tag: string;
  a: TestNs;
  b: TestNs;
  /** cgroup v2 directory for "pod" processes; the datapath's cgroupRoot in tests */
  cgroup: string;
  /** unique pin root under bpffs: /sys/fs/bpf/nodemesh/test-<tag>/v1 */
  pinRoot: string;
  tmpDir: string;
  /** Extra netns, same rules (named nm-t-<tag>-<suffix>, no links). */
  addNs(suffix: string, ip?: string): TestNs;
  /** Runs `argv` inside `ns` (via nsenter, which keeps /sys/fs/bpf visible), optionally in the test cgroup. */
  spawnIn(ns: TestNs, argv: string[], opts?: { inCgroup?: boolean }): ChildProcess;
  destroy(): void;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The cgroup v2 root, mounted the way the agent and the lab mount it when the host has none. */
function cgroup2Root(): string {
  return findOrMountCgroup2(mountCommand('cgroup2')).path;
}

export function createTestNet(): TestNet {
  const tag = crypto.randomBytes(3).toString('hex');
  const subnet = `198.18.${crypto.randomInt(0, 256)}`;
  const nsNames: string[] = [];
  const children: ChildProcess[] = [];
  const tmpDir = fs.mkdtempSync(`/tmp/nm-t-${tag}-`);
  const cgroup = path.join(cgroup2Root(), `nm-t-${tag}`);
  const pinParent = `/sys/fs/bpf/nodemesh/test-${tag}`;
  let ipSeq = 2;

  const mkNs = (suffix: string, ip?: string): TestNs => {
    const name = `nm-t-${tag}-${suffix}`;
    sh('ip', ['netns', 'add', name]);
    nsNames.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return { name, path: `/run/netns/${name}`, ip: ip ?? `${subnet}.${++ipSeq}` };
  };

  const net: TestNet = {
    tag,
    a: undefined as unknown as TestNs,
    b: undefined as unknown as TestNs,
    cgroup,
    pinRoot: path.join(pinParent, 'v1'),
    tmpDir,
    addNs: (suffix, ip) => mkNs(suffix, ip),
    spawnIn(ns, argv, opts = {}) {
      // the shell moves itself into the cgroup BEFORE exec: a socket's cgroup is fixed at creation
      const enter = opts.inCgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : '';
      const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      const child = spawn('sh', ['-c', `${enter}exec nsenter --net=${ns.path} ${quoted}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
    destroy() {
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null && c.pid) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      for (const name of nsNames) {
        try {
          sh('ip', ['netns', 'del', name]);
        } catch {
          // already gone
        }
      }
      removeCgroup(cgroup);
      removePins(pinParent);
      fs.rmSync(tmpDir, { recursive: true, force: true });
    },
  };
  try {
    fs.mkdirSync(cgroup);
    net.a = mkNs('a', `${subnet}.1`);
    net.b = mkNs('b', `${subnet}.2`);
    sh('ip', ['-n', net.a.name, 'link', 'add', 'nmt0', 'type', 'veth', 'peer', 'name', 'nmt1', 'netns', net.b.name]);
    sh('ip', ['-n', net.a.name, 'addr', 'add', `${net.a.ip}/24`, 'dev', 'nmt0']);
    sh('ip', ['-n', net.b.name, 'addr', 'add', `${net.b.ip}/24`, 'dev', 'nmt1']);
    sh('ip', ['-n', net.a.name, 'link', 'set', 'nmt0', 'up']);
    sh('ip', ['-n', net.b.name, 'link', 'set', 'nmt1', 'up']);
  } catch (err) {
    net.destroy();
    throw err;
  }
  return net;
}

function removeCgroup(dir: string): void {
  if (!fs.existsSync(dir)) return;
  // processes we killed may take a moment to leave the cgroup
  for (let i = 0; i < 50; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch {
      execFileSync('sleep', ['0.1']);
    }
  }
}

/** Removes a test pin tree, detaching any links still pinned in it (a failed test must not leave hooks). */
function removePins(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (d.endsWith('/links')) {
        try {
          execFileSync('bpftool', ['link', 'detach', 'pinned', p], { stdio: 'ignore' });
        } catch {
          // defunct or already detached
        }
      }
    }
  };
  walk(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.rmdirSync(path.dirname(dir)); // /sys/fs/bpf/nodemesh, if no other test or agent pins under it
  } catch {
    // not empty, or already gone
  }
}

/** Resolves with the first stdout line of `child` (servers print "ready"; clients print one JSON result). */
export function firstLine(child: ChildProcess, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`timed out waiting for output; stderr: ${stderr}`)), timeoutMs);
    rl.once('line', (line) => {
      clearTimeout(timer);
      rl.close();
      resolve(line);
    });
    child.once('exit', (code) => {
      setTimeout(() => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code} before output; stderr: ${stderr}`));
      }, 50);
    });
  });
}

/** A tiny TCP client: connects, reads until EOF, prints {ok, data} or {ok:false, code}. */
export const CLIENT_JS = `
const net = require('net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let data = '';
s.setTimeout(5000, () => { console.log(JSON.stringify({ ok: false, code: 'TIMEOUT' })); process.exit(0); });
s.on('data', (d) => (data += d));
s.on('end', () => { console.log(JSON.stringify({ ok: true, data })); process.exit(0); });
s.on('error', (e) => { console.log(JSON.stringify({ ok: false, code: e.code })); process.exit(0); });
`;

/** A TCP server printing "ready" once listening and answering every connection with `reply`. */
export function serverJs(host: string, port: number, reply: string): string {
  return `require('net').createServer((s) => s.end(${JSON.stringify(reply)})).listen(${port}, ${JSON.stringify(host)}, () => console.log('ready'));`;
}
