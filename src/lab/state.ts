// The lab's record on disk (state.json): what was created, so down/exec/status can find it again.

import fs from 'node:fs';
import path from 'node:path';
import { LabError } from './errors';
import { LAB_RUN_ROOT, statePath } from './paths';
import type { KubeLabState } from './kube/kube-state';

/** A process we started; startTime (from /proc/PID/stat) guards against a recycled pid. */
export interface ProcRef {
  pid: number;
  startTime: string;
}

export interface NodeState {
  name: string;
  index: number;
  netns: string;
  fabricIP: string;
  cidr: string;
  gateway: string;
  stateDir: string;
  pinRoot: string;
  cgroup: string;
  agentCgroup: string;
  podsCgroup: string;
  enrollSocket: string;
  adminSocket: string;
  agentLog: string;
  agent?: ProcRef;
  /** Agents that handed over to `agent` (lab upgrade-agent) and still drain their open connections. */
  draining?: ProcRef[];
  ready: boolean;
}

export interface ContainerState {
  name: string;
  argv: string[];
  log: string;
  proc?: ProcRef;
}

export interface PodState {
  name: string;
  namespace: string;
  uid: string;
  node: string;
  key: string;
  netns: string;
  netnsPath: string;
  cgroup: string;
  ip: string;
  serviceAccount: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Whether the manifest asks for enrollment (annotation nodemesh.io/enroll != "false"). */
  enroll: boolean;
  enrolled: boolean;
  enrollError?: string;
  /** Environment common to the pod's containers and `lab exec` (POD_*, NODE_NAME, PATH). */
  env: Record<string, string>;
  containers: ContainerState[];
  created: boolean;
}

export interface LabState {
  version: 1;
  lab: string;
  manifest: string;
  createdAt: string;
  phase: 'creating' | 'ready' | 'failed';
  cgroup2Root: string;
  labCgroup: string;
  fabricNetns: string;
  pinDir: string;
  binDir: string;
  logDir: string;
  agentCommand: string[];
  agentLogLevel: string;
  /** Extra agent flags for every node (e.g. --cert-validity 6), kept for restarts. */
  agentArgs?: string[];
  cli: string;
  nodes: NodeState[];
  pods: PodState[];
  /** The lab's control plane (fed by the lab file), when started. */
  /** The lab's Prometheus (`nodemesh lab prometheus --start`), in the fabric netns. */
  prometheus?: { ref: ProcRef; cgroup: string; log: string; address: string };
  /** `dashboardUrl`: where the dashboard answers, on the host's loopback. */
  controlPlane?: { ref: ProcRef; cgroup: string; log: string; xdsSocket: string; configDir: string; dashboardUrl?: string };
  /** Non-Pod objects of the manifest (Services, policies): served by the lab's control plane. */
  objects: { kind: string; namespace: string; name: string }[];
  /** Kubernetes mode (`lab up --kubernetes`): the API server, what the lab created in it, the pods' CNI sandboxes. */
  kubernetes?: KubeLabState;
  errors: string[];
}

/** Atomic write (temp file + rename), so a crash never leaves a half-written state.json. */
export function writeState(state: LabState): void {
  const file = statePath(state.lab);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** The lab's state, or undefined when there is none (never created, or already down). */
export function readStateIfAny(lab: string): LabState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(statePath(lab), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const s = JSON.parse(text) as LabState;
    return s.version === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

export function readState(lab: string): LabState {
  const s = readStateIfAny(lab);
  if (!s) {
    throw new LabError('NM_LAB_NOT_FOUND', `lab "${lab}" is not running (no ${statePath(lab)})`, {
      hint: 'start it with "nodemesh lab up -f FILE", or pass the right --name',
    });
  }
  return s;
}

/** Names of labs that have a state dir (used to avoid touching another lab's netns by prefix). */
export function listLabs(): string[] {
  try {
    return fs.readdirSync(LAB_RUN_ROOT);
  } catch {
    return [];
  }
}

/** /proc/PID/stat field 22 (start time in clock ticks), or undefined when the process is gone. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parens: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when the pid still names the process we started (same start time) and it is not a zombie. */
export function procAlive(ref: ProcRef | undefined): boolean {
  if (!ref) return false;
  const st = procStartTime(ref.pid);
  if (st === undefined || st !== ref.startTime) return false;
  try {
    const stat = fs.readFileSync(`/proc/${ref.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
