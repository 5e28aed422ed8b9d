// Lists what a lab left in the kernel after `lab down`: netns, cgroups, bpf pins, programs, processes.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { LabState } from '../../src/lab';
import { findOrMountCgroup2 } from '../../src/util/cgroup2';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Everything of lab `lab` still present; `programIds` are the BPF program ids its agents reported. */
export async function leftovers(lab: string, nodes: LabState['nodes'], programIds: number[] = [], pids: number[] = []): Promise<string[]> {
  const left: string[] = [];
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`nm-${lab}-`));
  if (netns.length) left.push(`netns: ${netns.join(' ')}`);
  const cg = path.join(findOrMountCgroup2().path, `nodemesh-lab-${lab}`);
  if (fs.existsSync(cg)) left.push(`cgroup: ${cg}`);
  for (const n of nodes) {
    if (fs.existsSync(n.pinRoot)) left.push(`pins: ${n.pinRoot}`);
    if (fs.existsSync(n.stateDir)) left.push(`state dir: ${n.stateDir}`);
    if (n.agent && alive(n.agent.pid)) left.push(`agent process ${n.agent.pid}`);
  }
  const labPins = `/sys/fs/bpf/nodemesh/lab/${lab}`;
  if (fs.existsSync(labPins)) left.push(`pins: ${labPins}`);
  if (programIds.length) {
    const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { id: number; name?: string }[];
    const still = progs.filter((p) => programIds.includes(p.id));
    if (still.length) left.push(`bpf programs: ${still.map((p) => `${p.id}:${p.name}`).join(' ')}`);
  }
  for (const pid of pids) if (alive(pid)) left.push(`process ${pid}`);
  return left;
}
