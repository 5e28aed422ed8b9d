// cgroup v2 helpers for the lab: create, move, kill (cgroup.kill) and remove subtrees deepest first.

import fs from 'node:fs';
import path from 'node:path';
import { findOrMountCgroup2 } from '../util/cgroup2';
import { mkdirsOn, mountCommand } from '../util/host-fs';
import { sleep } from './run';

/** The cgroup v2 root, mounting one if the host has none (hybrid hosts often have it unmounted). */
export function labCgroup2Root(): string {
  return findOrMountCgroup2(mountCommand('cgroup2')).path;
}

/** Creates a cgroup and its missing parents; refuses (one error, no retry loop) if `dir` is not on cgroup v2. */
export function mkCgroup(dir: string): void {
  mkdirsOn(dir, 'cgroup2');
}

/** True while any process lives in the subtree (cgroup.events "populated 1"). */
export function cgroupPopulated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

export function cgroupPids(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs every process of the subtree, including ones forked after the call started (kernel-side). */
export function killCgroup(dir: string): void {
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export async function waitCgroupEmpty(dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (cgroupPopulated(dir)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Child cgroup dirs of `dir`, deepest first (rmdir order). */
function subtreeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...subtreeDeepestFirst(path.join(dir, e.name)));
  out.push(dir);
  return out;
}

/**
 * Removes a cgroup subtree. cgroupfs only allows rmdir (never unlink of its files), and a dir
 * stays busy for a moment after its last process exits, so EBUSY is retried.
 */
export async function removeCgroupTree(dir: string, timeoutMs = 5000): Promise<string[]> {
  const failed: string[] = [];
  for (const d of subtreeDeepestFirst(dir)) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        fs.rmdirSync(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code === 'EBUSY' && Date.now() < deadline) {
          await sleep(50);
          continue;
        }
        failed.push(`${d}: ${code ?? (e as Error).message}`);
        break;
      }
    }
  }
  return failed;
}
