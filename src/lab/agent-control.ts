// Starts, stops, restarts and upgrades a lab node's agent (used by lab up, lab upgrade-agent, and by tests of agent
// restarts and handovers).

import fs from 'node:fs';
import path from 'node:path';
import { mkdirsOn } from '../util/host-fs';
import { cgroupPids, killCgroup, mkCgroup, waitCgroupEmpty } from './cgroups';
import { nodeTokenFile } from './controlplane';
import { kubeAgentArgs } from './kube/kube-state';
import { LabError } from './errors';
import { checkLabName } from './paths';
import { startDetached, waitAgentReady, type Started } from './processes';
import { sleep } from './run';
import { procAlive, readState, writeState, type LabState, type NodeState } from './state';

/** Spawns the node's agent in the node netns and its own cgroup; does not wait for readiness. */
export function spawnAgent(state: LabState, n: NodeState, logLevel = 'info'): Promise<Started> {
  // bpffs is mounted by lab up before the first agent starts (prepareHost); never mkdir -p on sysfs.
  fs.mkdirSync(n.stateDir, { recursive: true });
  mkdirsOn(n.pinRoot, 'bpf');
  for (const d of [n.agentCgroup, n.podsCgroup]) mkCgroup(d);
  const argv = [
    ...state.agentCommand,
    '--node', n.name,
    '--state-dir', n.stateDir,
    '--pin-root', n.pinRoot,
    '--cgroup-root', n.podsCgroup,
    '--log-level', logLevel,
    // Metrics (15020) and readiness (15021) on the node's fabric address, so the lab's Prometheus reaches them.
    '--probe-host', n.fabricIP,
    // Every request traced in the lab, as Istio's demo profile does (an --agent-arg may say otherwise).
    '--trace-sampling', '100',
  ];
  if (state.kubernetes) {
    argv.push(...kubeAgentArgs(state, n));
  } else if (state.controlPlane) {
    argv.push('--xds', `unix://${state.controlPlane.xdsSocket}`);
    if (fs.existsSync(nodeTokenFile(n.stateDir))) argv.push('--ca-token-file', nodeTokenFile(n.stateDir));
  }
  argv.push(...(state.agentArgs ?? []));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    NODE_NAME: n.name,
    NODEMESH_LAB: state.lab,
  };
  if (process.env.NODEMESH_TRACE) env.NODEMESH_TRACE = process.env.NODEMESH_TRACE;
  return startDetached({ cgroup: n.agentCgroup, netns: n.netns, argv, env }, n.agentLog);
}

function findNode(state: LabState, node: string): NodeState {
  const n = state.nodes.find((x) => x.name === node);
  if (!n) {
    throw new LabError('NM_LAB_NOT_FOUND', `no node "${node}" in lab "${state.lab}"`, { hint: `nodes: ${state.nodes.map((x) => x.name).join(', ')}` });
  }
  return n;
}

/**
 * Signals a node's agent and waits until it and anything it forked are gone (the agent cgroup is
 * empty). SIGTERM means a graceful drain; SIGKILL simulates a crash (pins stay, pods keep running).
 * `onlyActive`: only the node's current agent, not predecessors still draining after a handover (a crash of
 * one agent process).
 */
export async function killAgent(lab: string, node: string, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000, opts: { onlyActive?: boolean } = {}): Promise<void> {
  const state = readState(checkLabName(lab));
  const n = findNode(state, node);
  if (procAlive(n.agent)) process.kill((n.agent as { pid: number }).pid, signal);
  for (const pid of opts.onlyActive ? [] : cgroupPids(n.agentCgroup)) {
    try {
      process.kill(pid, signal);
    } catch {
      // raced its exit
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (procAlive(n.agent) && Date.now() < deadline) await sleep(50);
  if (procAlive(n.agent)) {
    killCgroup(n.agentCgroup);
    throw new LabError('NM_LAB_AGENT_START', `agent of node ${node} did not exit within ${timeoutMs} ms of ${signal}; killed it`, { hint: `see ${n.agentLog}` });
  }
  if (!opts.onlyActive) await waitCgroupEmpty(n.agentCgroup, timeoutMs);
  n.ready = false;
  n.draining = (n.draining ?? []).filter((r) => procAlive(r));
  writeState(state);
  await refreshKubeStatus(state);
}

/** Kubernetes mode: the agent DaemonSet's status follows what runs. */
async function refreshKubeStatus(state: LabState): Promise<void> {
  if (state.kubernetes) await (await import('./kube/mesh-processes')).refreshMeshWorkloadStatus(state);
}

export interface UpgradeResult {
  node: string;
  /** The agent that took over. */
  pid: number;
  /** The agent it took over from (null: none was running: an ordinary start). */
  previous: number | null;
  /** Predecessors still draining their open connections (the one just replaced included). */
  draining: number[];
}

/**
 * `lab upgrade-agent NODE`: starts a new agent (the current build) beside the running one, as a DaemonSet
 * with maxSurge: 1 does. The new agent takes over (see src/agent/handover.ts) and reports ready; the old one
 * stops accepting and drains its open connections, then exits on its own. Resolves once the new one is ready.
 */
export async function upgradeAgent(lab: string, node: string, opts: { readyTimeoutMs?: number; logLevel?: string } = {}): Promise<UpgradeResult> {
  const state = readState(checkLabName(lab));
  const n = findNode(state, node);
  const previous = procAlive(n.agent) ? n.agent! : null;
  const a = await spawnAgent(state, n, opts.logLevel ?? state.agentLogLevel);
  // The new agent's own admin socket: the node's admin.sock names the old one until the handover is done.
  const own = path.join(n.stateDir, `admin-${a.ref.pid}.sock`);
  try {
    await waitAgentReady(n.name, own, a, n.agentLog, opts.readyTimeoutMs ?? 60_000);
  } catch (err) {
    // The old agent carries on (a successor that goes away makes it resume); do not leave this one half-started.
    if (procAlive(a.ref)) process.kill(a.ref.pid, 'SIGKILL');
    throw err;
  }
  const fresh = readState(checkLabName(lab));
  const fn = findNode(fresh, node);
  fn.draining = [...(fn.draining ?? []), ...(previous ? [previous] : [])].filter((r) => procAlive(r));
  fn.agent = a.ref;
  fn.ready = true;
  writeState(fresh);
  await refreshKubeStatus(fresh);
  return { node, pid: a.ref.pid, previous: previous?.pid ?? null, draining: fn.draining.map((r) => r.pid) };
}

/** (Re)starts a node's agent after killAgent and waits for /healthz/ready; the agent reconciles its pods itself. */
export async function startAgent(lab: string, node: string, opts: { readyTimeoutMs?: number; logLevel?: string } = {}): Promise<void> {
  const state = readState(checkLabName(lab));
  const n = findNode(state, node);
  if (procAlive(n.agent)) {
    throw new LabError('NM_LAB_AGENT_START', `agent of node ${node} is already running (pid ${n.agent?.pid})`, { hint: 'stop it first with killAgent' });
  }
  const a = await spawnAgent(state, n, opts.logLevel ?? state.agentLogLevel);
  n.agent = a.ref;
  n.ready = false;
  writeState(state);
  await waitAgentReady(n.name, n.adminSocket, a, n.agentLog, opts.readyTimeoutMs ?? 30_000);
  n.ready = true;
  writeState(state);
  await refreshKubeStatus(state);
}
