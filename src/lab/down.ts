// `lab down`: stops agents gracefully, kills pods, removes pins, netns and cgroups; works from any partial state.

import fs from 'node:fs';
import path from 'node:path';
import { cgroupPids, killCgroup, labCgroup2Root, removeCgroupTree, waitCgroupEmpty } from './cgroups';
import { LabError } from './errors';
import { silentLogger, type LabLogger } from './log';
import { checkLabName, LAB_PIN_ROOT, labCgroup, labDir, labPinDir, netnsPrefix, NETNS_DIR } from './paths';
import { run, sleep } from './run';
import { listLabs, procAlive, readStateIfAny, type LabState, type ProcRef } from './state';
import { listNetns } from './topology';

export interface DownOptions {
  lab: string;
  logger?: LabLogger;
  /** How long agents get to drain after SIGTERM before SIGKILL. */
  agentStopTimeoutMs?: number;
}

export interface DownReport {
  lab: string;
  found: boolean;
  agentsStopped: number;
  netnsDeleted: string[];
  cgroupsRemoved: boolean;
  pinsRemoved: boolean;
}

function signal(ref: ProcRef | undefined, sig: NodeJS.Signals): boolean {
  if (!ref || !procAlive(ref)) return false;
  try {
    process.kill(ref.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Netns of this lab: those in its state plus those matching its prefix. Another running lab whose
 * name extends ours ("a" vs "a-b") shares the prefix, so names under its prefix are left alone
 * unless our state lists them.
 */
async function labNetns(lab: string, state: LabState | undefined): Promise<string[]> {
  const all = await listNetns().catch(() => [] as string[]);
  const mine = new Set<string>();
  if (state) {
    for (const n of [state.fabricNetns, ...state.nodes.map((x) => x.netns), ...state.pods.map((x) => x.netns)]) {
      if (all.includes(n)) mine.add(n);
    }
  }
  // Labs whose names extend ours: their netns carry our prefix too.
  const longer = listLabs().filter((o) => o !== lab && o.startsWith(`${lab}-`));
  const prefix = netnsPrefix(lab);
  for (const n of all) {
    if (n.startsWith(prefix) && !longer.some((o) => n.startsWith(netnsPrefix(o)))) mine.add(n);
  }
  return [...mine];
}

/** Removes a bpffs subtree; unlinking a pinned link detaches it once no process holds it. */
function removePins(dir: string): string[] {
  const failed: string[] = [];
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    failed.push(`${dir}: ${(e as Error).message}`);
  }
  // Drop empty parents we created (/sys/fs/bpf/nodemesh/lab, /sys/fs/bpf/nodemesh); rmdir refuses non-empty ones.
  for (const parent of [LAB_PIN_ROOT, path.dirname(LAB_PIN_ROOT)]) {
    try {
      fs.rmdirSync(parent);
    } catch {
      // in use by another lab or agent: keep
    }
  }
  return failed;
}

export async function labDown(opts: DownOptions): Promise<DownReport> {
  const lab = checkLabName(opts.lab);
  const log = opts.logger ?? silentLogger;
  const state = readStateIfAny(lab);
  const cg2 = state?.cgroup2Root ?? labCgroup2Root();
  const labCg = state?.labCgroup ?? labCgroup(cg2, lab);
  const problems: string[] = [];
  const report: DownReport = { lab, found: false, agentsStopped: 0, netnsDeleted: [], cgroupsRemoved: false, pinsRemoved: false };
  report.found = state !== undefined || fs.existsSync(labDir(lab)) || fs.existsSync(labCg) || fs.existsSync(labPinDir(lab));

  // 0. Kubernetes mode: CNI DEL of each pod while the agents run, and the objects the lab made in an API server it does not own.
  if (state?.kubernetes) problems.push(...(await (await import('./kube/kube-down')).kubeTeardown(state, log)));

  // 1. Agents first, with SIGTERM: they drain and detach their programs before pods vanish.
  const agentCgs = state
    ? state.nodes.map((n) => n.agentCgroup)
    : fs.existsSync(labCg)
      ? fs.readdirSync(labCg, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => path.join(labCg, d.name, 'agent'))
      : [];
  const agentRefs = (state?.nodes ?? []).map((n) => n.agent);
  for (const ref of agentRefs) if (signal(ref, 'SIGTERM')) report.agentsStopped++;
  for (const cg of agentCgs) {
    for (const pid of cgroupPids(cg)) {
      try {
        process.kill(pid, 'SIGTERM');
        report.agentsStopped++;
      } catch {
        // already gone
      }
    }
  }
  const deadline = Date.now() + (opts.agentStopTimeoutMs ?? 5000);
  while (Date.now() < deadline && (agentRefs.some((r) => procAlive(r)) || agentCgs.some((cg) => cgroupPids(cg).length > 0))) {
    await sleep(50);
  }
  for (const cg of agentCgs) killCgroup(cg);
  for (const ref of agentRefs) if (signal(ref, 'SIGKILL')) log.warn(`agent pid ${ref?.pid} did not stop after SIGTERM; killed`);

  // 2. Every other lab process: cgroup.kill covers children they forked; pids cover anything that escaped.
  killCgroup(labCg);
  for (const pod of state?.pods ?? []) for (const c of pod.containers) signal(c.proc, 'SIGKILL');
  if (!(await waitCgroupEmpty(labCg, 5000))) problems.push(`processes still in ${labCg}: ${cgroupPids(labCg).join(' ')}`);

  // 3. bpf pins (links, maps, programs) of every node of the lab.
  const pinFailures = removePins(labPinDir(lab));
  problems.push(...pinFailures);
  report.pinsRemoved = pinFailures.length === 0;

  // 4. Network namespaces: deleting a pod/node netns also destroys the veths inside it.
  for (const ns of await labNetns(lab, state)) {
    try {
      await run(['ip', 'netns', 'delete', ns]);
      report.netnsDeleted.push(ns);
    } catch (e) {
      // Racing another cleanup: gone is fine.
      if (fs.existsSync(path.join(NETNS_DIR, ns))) problems.push((e as Error).message);
    }
  }

  // 5. cgroups, deepest first.
  const cgFailures = await removeCgroupTree(labCg);
  problems.push(...cgFailures);
  report.cgroupsRemoved = cgFailures.length === 0;

  // 6. The lab dir (logs, sockets, state.json) last: until here a re-run can still find everything.
  if (problems.length === 0) fs.rmSync(labDir(lab), { recursive: true, force: true });
  if (problems.length > 0) {
    throw new LabError('NM_LAB_TEARDOWN_INCOMPLETE', `lab "${lab}" was not fully removed:\n  ${problems.join('\n  ')}`, {
      hint: 'run "nodemesh lab down" again; if it persists, check for processes holding the netns (lsof /run/netns/*)',
    });
  }
  log.info(report.found ? `lab "${lab}" is down` : `lab "${lab}" was not running; nothing to do`);
  return report;
}
