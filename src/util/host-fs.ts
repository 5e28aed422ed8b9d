// The host filesystems the datapath lives on (bpffs, cgroup v2): which one a path is on, mounting
// bpffs once when the host has none, and making directories there without ever looping.
//
// Why not `fs.mkdirSync(dir, { recursive: true })`: where bpffs is not mounted, /sys/fs/bpf is a
// plain sysfs directory, and mkdir inside sysfs answers ENOENT even though the parent exists. Node's
// recursive mkdir reads ENOENT as "create the parent first" and retries forever (one core at 100 %).
// `mkdirsOn` checks the filesystem of the nearest existing ancestor first and creates one component
// at a time, so a wrong mount is one clear error.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NodemeshError } from './errors';

export class HostFsError extends NodemeshError {}

/** statfs(2) f_type values of the filesystems this project cares about. */
export const FS_MAGIC = {
  bpf: 0xcafe4a11,
  cgroup2: 0x63677270,
  cgroup: 0x27e0eb,
  sysfs: 0x62656572,
  tmpfs: 0x01021994,
  proc: 0x9fa0,
} as const;
export type FsKind = keyof typeof FS_MAGIC;

/** Where bpffs lives on every distribution, and the only place the project mounts it. */
export const BPFFS_ROOT = '/sys/fs/bpf';

/** statfs type of `p`, or null when it does not exist or cannot be read. */
export function fsTypeOf(p: string): number | null {
  try {
    return fs.statfsSync(p).type;
  } catch {
    return null;
  }
}

/** A readable name for a statfs type ("sysfs", "bpf", or the number in hex). */
export function fsKindName(type: number | null): string {
  if (type === null) return 'nothing (does not exist)';
  for (const [name, magic] of Object.entries(FS_MAGIC)) if (magic === type) return name;
  return `0x${type.toString(16)}`;
}

/** Nearest existing ancestor of `p` (p itself if it exists). Terminates: dirname('/') is '/'. */
export function existingAncestor(p: string): string {
  let cur = path.resolve(p);
  while (!fs.existsSync(cur)) {
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return cur;
}

/**
 * Creates `dir` and its missing parents on a filesystem of kind `kind`, refusing (with the
 * filesystem actually found) when the nearest existing ancestor is on another one. Each component is
 * one non-recursive mkdir: no retry, no loop.
 */
export function mkdirsOn(dir: string, kind: FsKind, mode = 0o755): void {
  const abs = path.resolve(dir);
  const anchor = existingAncestor(abs);
  const found = fsTypeOf(anchor);
  if (found !== FS_MAGIC[kind]) {
    throw new HostFsError('NM_HOST_FS_WRONG', `cannot create ${abs}: ${anchor} is on ${fsKindName(found)}, not ${kind}`, {
      hint: kind === 'bpf' ? `bpffs is not mounted there: mount it first ("mount -t bpf bpf ${BPFFS_ROOT}")` : `use a directory on a ${kind} mount`,
    });
  }
  if (anchor === abs) return;
  const missing = path.relative(anchor, abs).split(path.sep);
  let cur = anchor;
  for (const part of missing) {
    cur = path.join(cur, part);
    try {
      fs.mkdirSync(cur, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // created by someone else meanwhile
      throw new HostFsError('NM_HOST_FS_MKDIR', `cannot create ${cur} on ${kind}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Mounts a filesystem of `kind` at `target`; the agent passes its addon's mount(2), the lab the mount command. */
export type Mounter = (target: string) => void;

/** mount(8) with a bound: a hung mount must not hang start-up. */
export function mountCommand(kind: 'bpf' | 'cgroup2'): Mounter {
  return (target) => {
    // bpffs as the addon mounts it: pins are the agents' business only (mode 0700).
    const opts = kind === 'bpf' ? ['-o', 'mode=0700,nosuid,nodev,noexec'] : [];
    execFileSync('mount', ['-t', kind, ...opts, kind === 'bpf' ? 'bpf' : 'none', target], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  };
}

export interface HostFsLogger {
  info(obj: object, msg: string): void;
}

/**
 * Makes sure `dir` (a pin root, or anything under /sys/fs/bpf) sits on bpffs, mounting bpffs at
 * /sys/fs/bpf when it is not there, and says so in one log line. Returns where it mounted, or null.
 *
 * Callers that start several agents (the lab) call this once before starting them: two agents that
 * each found /sys/fs/bpf unmounted would stack two bpffs instances, and the first one's pins would be
 * hidden under the second.
 */
export function ensureBpffs(dir: string, mount: Mounter, log: HostFsLogger): string | null {
  const abs = path.resolve(dir);
  if (fsTypeOf(existingAncestor(abs)) === FS_MAGIC.bpf) return null;
  const underRoot = abs === BPFFS_ROOT || abs.startsWith(`${BPFFS_ROOT}/`);
  if (!underRoot) {
    throw new HostFsError('NM_HOST_BPFFS', `${dir} is not on a bpf filesystem`, {
      hint: `use a directory under ${BPFFS_ROOT}, or mount bpffs there first ("mount -t bpf bpf DIR")`,
    });
  }
  const rootType = fsTypeOf(BPFFS_ROOT);
  if (rootType === null) {
    throw new HostFsError('NM_HOST_BPFFS', `bpffs is not mounted and its mount point ${BPFFS_ROOT} does not exist`, {
      hint: `is /sys mounted? mount bpffs on the host ("mount -t bpf bpf ${BPFFS_ROOT}") and pass ${BPFFS_ROOT} into the agent's container`,
    });
  }
  try {
    mount(BPFFS_ROOT);
  } catch (err) {
    throw new HostFsError('NM_HOST_BPFFS', `bpffs is not mounted at ${BPFFS_ROOT} (it is ${fsKindName(rootType)}) and mounting it failed: ${(err as Error).message}`, {
      hint: `mount it on the host ("mount -t bpf bpf ${BPFFS_ROOT}") and pass ${BPFFS_ROOT} into the agent's container`,
      cause: err,
    });
  }
  if (fsTypeOf(BPFFS_ROOT) !== FS_MAGIC.bpf) {
    throw new HostFsError('NM_HOST_BPFFS', `mounted bpffs at ${BPFFS_ROOT}, yet it still reads as ${fsKindName(fsTypeOf(BPFFS_ROOT))}`, {
      hint: 'another mount may be stacked on top; check "grep bpf /proc/self/mounts"',
    });
  }
  log.info({ where: BPFFS_ROOT }, `bpffs was not mounted: mounted it at ${BPFFS_ROOT}`);
  return BPFFS_ROOT;
}
