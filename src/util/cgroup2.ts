// Finds (or mounts) the cgroup v2 hierarchy: cgroup-bpf programs only work there.

import fs from 'node:fs';
import path from 'node:path';
import { NodemeshError } from './errors';
import { FS_MAGIC, fsKindName, fsTypeOf, mkdirsOn, type FsKind, type Mounter } from './host-fs';

export class CgroupError extends NodemeshError {}

/** Mount points of cgroup2 from /proc/self/mounts, in mount order. */
export function cgroup2Mounts(mountsText = fs.readFileSync('/proc/self/mounts', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountsText.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) out.push(f[1].replace(/\\040/g, ' '));
  }
  return out;
}

export interface Cgroup2Root {
  path: string;
  /** True when this call mounted it (the caller should say where). */
  mounted: boolean;
}

/**
 * Where to mount cgroup v2 on a host that has none, best first: /sys/fs/cgroup itself when nothing is
 * mounted there (it is then a bare sysfs directory), /sys/fs/cgroup/unified on hybrid hosts (cgroup v1
 * controllers under a tmpfs at /sys/fs/cgroup), else a directory of our own under /run.
 */
function mountCandidates(): { target: string; parentKind: FsKind }[] {
  const root = fsTypeOf('/sys/fs/cgroup');
  const out: { target: string; parentKind: FsKind }[] = [];
  if (root === FS_MAGIC.sysfs) out.push({ target: '/sys/fs/cgroup', parentKind: 'sysfs' });
  if (root === FS_MAGIC.tmpfs) out.push({ target: '/sys/fs/cgroup/unified', parentKind: 'tmpfs' });
  out.push({ target: '/run/nodemesh/cgroup2', parentKind: 'tmpfs' });
  return out;
}

/**
 * Returns the cgroup v2 root. If none is mounted, mounts one at the first workable candidate using
 * `mountFn`, so callers decide how to mount (and say where: `mounted` is true then).
 */
export function findOrMountCgroup2(mountFn?: Mounter): Cgroup2Root {
  const mounts = cgroup2Mounts();
  const first = mounts[0];
  if (first) return { path: first, mounted: false };
  if (!mountFn) {
    throw new CgroupError('NM_CGROUP2_MISSING', 'cgroup v2 is not mounted', {
      hint: 'mount it with "mount -t cgroup2 none /sys/fs/cgroup/unified"; cgroup-bpf needs cgroup v2',
    });
  }
  const tried: string[] = [];
  for (const { target, parentKind } of mountCandidates()) {
    try {
      if (!fs.existsSync(target)) mkdirsOn(target, parentKind);
      mountFn(target);
      if (fsTypeOf(target) === FS_MAGIC.cgroup2) return { path: target, mounted: true };
      tried.push(`${target}: still ${fsKindName(fsTypeOf(target))} after mounting`);
    } catch (e) {
      tried.push(`${target}: ${(e as Error).message}`);
    }
  }
  throw new CgroupError('NM_CGROUP2_MOUNT_FAILED', `cgroup v2 is not mounted and mounting it failed (${tried.join('; ')})`, {
    hint: 'the agent needs CAP_SYS_ADMIN to mount cgroup2, or mount it before starting the agent',
  });
}

/** The cgroup v2 path (relative to the v2 root) of a process, from /proc/PID/cgroup's "0::" line. */
export function processCgroup2Path(pid: number | 'self' = 'self'): string | null {
  const text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  for (const line of text.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
  }
  return null;
}

/** cgroup v2 id as the kernel reports it to BPF (`bpf_get_current_cgroup_id`): the kernfs inode number. */
export function cgroupId(absPath: string): bigint {
  return fs.statSync(absPath, { bigint: true }).ino;
}

/**
 * How many CPUs' worth of time the cgroup `rel` (below the v2 mount `root`) may use: the tightest `cpu.max`
 * quota of it and its ancestors, rounded up, or null when none sets one (or the files cannot be read).
 */
export function cgroupCpuLimit(root: string, rel: string): number | null {
  let limit: number | null = null;
  const parts = rel.split('/').filter(Boolean);
  for (let i = parts.length; i >= 0; i--) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(root, ...parts.slice(0, i), 'cpu.max'), 'utf8');
    } catch {
      continue; // the root has no cpu.max; a controller not enabled there has none either
    }
    const [quota, period] = text.trim().split(/\s+/);
    const q = Number(quota);
    const p = Number(period);
    if (quota === 'max' || !Number.isFinite(q) || !(p > 0)) continue;
    const cpus = Math.max(1, Math.ceil(q / p));
    limit = limit === null ? cpus : Math.min(limit, cpus);
  }
  return limit;
}
