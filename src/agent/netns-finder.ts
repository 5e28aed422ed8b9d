// Finds pods' network namespaces from the node's /proc (hostPID), for pods that ran before the agent: one process
// per namespace, the namespace's local addresses read from that process's /proc/PID/net (no setns needed), and the
// process's cgroup v2 path.

import fs from 'node:fs';
import path from 'node:path';
import { cgroup2Mounts } from '../util/cgroup2';
import { canonicalIp } from '../util/ip';

export interface FoundNetns {
  pid: number;
  /** /proc/PID/ns/net */
  netnsPath: string;
  /** Absolute cgroup v2 directory of that process, or null. */
  cgroupPath: string | null;
}

/** IPv4 addresses marked "/32 host LOCAL" in a fib_trie dump. */
export function localIPv4(fibTrie: string): string[] {
  const out = new Set<string>();
  let last: string | null = null;
  for (const line of fibTrie.split('\n')) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (leaf) {
      last = leaf[1]!;
      continue;
    }
    if (last && /\/32 host LOCAL/.test(line)) out.add(last);
  }
  out.delete('127.0.0.1');
  return [...out];
}

/** Addresses in /proc/net/if_inet6 (hex, 32 digits per line), global scope only. */
export function localIPv6(ifInet6: string): string[] {
  const out: string[] = [];
  for (const line of ifInet6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[3] !== '00') continue; // scope 00: global
    out.push(canonicalIp(f[0]!.match(/.{4}/g)!.join(':')));
  }
  return out;
}

/**
 * The cgroup v2 mount that holds `dir` (the longest mount point it is under), else `dir`: /proc/PID/cgroup paths
 * are relative to the mount's root, not to an agent's --cgroup-root below it (a lab node's pods cgroup).
 */
export function cgroupMountOf(dir: string, mounts: string[] = cgroup2Mounts()): string {
  const under = mounts.filter((m) => dir === m || dir.startsWith(m.endsWith('/') ? m : `${m}/`));
  return under.sort((a, b) => b.length - a.length)[0] ?? dir;
}

/**
 * Maps every local IP of every network namespace that some process in `procRoot` is in (except the ones of
 * `skipPids`' namespaces: the host's and the agent's own) to that namespace. Unreadable processes are skipped.
 */
export function scanNetns(procRoot: string, cgroupRoot: string, skipPids: (number | 'self')[] = [1, 'self'], cgroupMounts?: string[]): Map<string, FoundNetns> {
  const inodeOf = (pid: number | string): string | null => {
    try {
      return fs.readlinkSync(path.join(procRoot, String(pid), 'ns', 'net'));
    } catch {
      return null;
    }
  };
  const skip = new Set(skipPids.map(inodeOf).filter((x): x is string => x !== null));
  const mount = cgroupMountOf(cgroupRoot, cgroupMounts);
  const seen = new Set<string>();
  const byIp = new Map<string, FoundNetns>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(procRoot);
  } catch {
    return byIp;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const ino = inodeOf(e);
    if (!ino || skip.has(ino) || seen.has(ino)) continue;
    seen.add(ino);
    const base = path.join(procRoot, e);
    let ips: string[] = [];
    try {
      ips = localIPv4(fs.readFileSync(path.join(base, 'net', 'fib_trie'), 'utf8'));
      ips.push(...localIPv6(fs.readFileSync(path.join(base, 'net', 'if_inet6'), 'utf8')));
    } catch {
      if (ips.length === 0) continue;
    }
    let cgroupPath: string | null = null;
    try {
      const line = fs.readFileSync(path.join(base, 'cgroup'), 'utf8').split('\n').find((l) => l.startsWith('0::'));
      if (line) cgroupPath = path.join(mount, line.slice(3));
    } catch {
      // gone meanwhile
    }
    // The same address may be local in namespaces of other nodes' pods (lab nodes share one /proc): a namespace
    // whose process is under this agent's cgroup root wins.
    const mine = cgroupPath !== null && !path.relative(cgroupRoot, cgroupPath).startsWith('..');
    for (const ip of ips) {
      const had = byIp.get(ip);
      const hadMine = had?.cgroupPath != null && !path.relative(cgroupRoot, had.cgroupPath).startsWith('..');
      if (!had || (mine && !hadMine)) byIp.set(ip, { pid: Number(e), netnsPath: path.join(base, 'ns', 'net'), cgroupPath });
    }
  }
  return byIp;
}
