// `lab up`: manifest -> address plan -> fabric, nodes + agents, pods (enrolled before their containers start).

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EnrollClient } from '../enroll/client';
import type { EnrollRequest } from '../enroll/protocol';
import { planAddresses, type AddressPlan, type NodePlan, type PodPlan } from './address-plan';
import { spawnAgent } from './agent-control';
import { findOrMountCgroup2 } from '../util/cgroup2';
import { ensureBpffs, mountCommand } from '../util/host-fs';
import { mkCgroup } from './cgroups';
import { provisionNodeTokens, spawnControlPlane, writeMeshConfig } from './controlplane';
import { labDown } from './down';
import { LabError } from './errors';
import { silentLogger, type LabLogger } from './log';
import { loadManifest, namespaceLabels, type LabManifest } from './manifest';
import * as P from './paths';
import { logTail, startDetached, waitAgentReady, writeCliWrapper, type Started } from './processes';
import { procAlive, writeState, type LabState, type NodeState, type PodState } from './state';
import { sleep } from './run';
import { createFabric, createNode, createPod, listNetns } from './topology';

export interface UpOptions {
  file: string;
  lab?: string;
  /** Pod-level failures (enrollment, a container dying at start) become warnings; the lab stays up. */
  keepGoing?: boolean;
  /** argv prefix of the agent; the lab appends --node/--state-dir/--pin-root/--cgroup-root/--log-level. */
  agentCommand?: string[];
  /** The CLI script the pods' `nodemesh` wrapper runs (default: this package's dist/src/cli/main.js). */
  cli?: string;
  logger?: LabLogger;
  agentReadyTimeoutMs?: number;
  agentLogLevel?: string;
  /** Extra flags for every agent (e.g. ['--cert-validity', '6']). */
  agentArgs?: string[];
  /** How long a container must survive after start to count as started. */
  containerGraceMs?: number;
  /** Aborting (e.g. on Ctrl-C) stops between steps and tears down what exists. */
  signal?: AbortSignal;
}

export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LabError('NM_LAB_UP_FAILED', 'lab up was interrupted', { hint: 'everything created so far is being removed' });
}

/**
 * V8 flags the agent runs with (the DaemonSet's image passes the same; Node refuses both in NODE_OPTIONS).
 * - `--single-threaded-gc`: V8's parallel GC helpers only help when idle cores wait for them; where the agent
 *   competes for its core (the bench pins both agents to one), the main thread sat waiting for helpers that
 *   could not run. S4 (a new connection per request), 2 interleaved A/Bs of 3 reps: p99 26.0 / 23.9 → 8.7 /
 *   7.4 ms, CPU 1.56 / 1.58 → 1.47 / 1.29 s per 1k; S5 one stream −3 %; S1 unchanged.
 * - `--max-semi-space-size=1` (MB): the young generation stays at 3 MB instead of growing to 48 MB under
 *   connection churn, where almost everything dies young. 2 A/Bs: S4 peak RSS 124 → 95 MB (private 64 → 45),
 *   S5 peak 113–123 → 88 MB, RSS at 5k rps 84 → 79–80 MB; CPU per request unchanged (S1 0.221 vs 0.222,
 *   S4 1.46 vs 1.47 s per 1k), S5 within its spread.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--max-semi-space-size=1'];

/** How the lab starts an agent. */
export function defaultAgentCommand(): string[] {
  return [process.execPath, ...AGENT_NODE_FLAGS, P.DEFAULT_CLI, 'agent'];
}

export function nodeState(lab: string, cg2: string, n: NodePlan): NodeState {
  return {
    name: n.name,
    index: n.index,
    netns: n.netns,
    fabricIP: n.fabricIP,
    cidr: n.cidr,
    gateway: n.gateway,
    stateDir: P.nodeStateDir(lab, n.name),
    pinRoot: P.nodePinRoot(lab, n.name),
    cgroup: P.nodeCgroup(cg2, lab, n.name),
    agentCgroup: P.agentCgroup(cg2, lab, n.name),
    podsCgroup: P.podsCgroupRoot(cg2, lab, n.name),
    enrollSocket: P.enrollSocket(lab, n.name),
    adminSocket: P.adminSocket(lab, n.name),
    agentLog: path.join(P.logDir(lab), `agent-${n.name}.log`),
    ready: false,
  };
}

export function podState(lab: string, cg2: string, p: PodPlan): PodState {
  const s = p.spec;
  const env: Record<string, string> = {
    PATH: `${P.binDir(lab)}:${process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}`,
    HOME: process.env.HOME ?? '/root',
    POD_NAME: s.name,
    POD_NAMESPACE: s.namespace,
    POD_IP: p.ip,
    NODE_NAME: p.node,
    POD_SERVICE_ACCOUNT: s.serviceAccount,
    NODEMESH_LAB: lab,
  };
  return {
    name: s.name,
    namespace: s.namespace,
    uid: s.uid ?? randomUUID(),
    node: p.node,
    key: p.key,
    netns: p.netns,
    netnsPath: P.netnsPath(p.netns),
    cgroup: path.join(P.podsCgroupRoot(cg2, lab, p.node), p.key),
    ip: p.ip,
    serviceAccount: s.serviceAccount,
    labels: s.labels,
    annotations: s.annotations,
    enroll: p.enroll,
    enrolled: false,
    env,
    containers: s.containers.map((c) => ({ name: c.name, argv: c.argv, log: path.join(P.logDir(lab), `pod-${p.key}-${c.name}.log`) })),
    created: false,
  };
}

/**
 * Mounts what the lab's agents need and the host may lack, once, before any agent starts (two agents
 * mounting bpffs at the same moment would stack two instances): cgroup v2 and bpffs. Returns the
 * cgroup v2 root.
 */
export function prepareHost(log: LabLogger): string {
  const cg2 = findOrMountCgroup2(mountCommand('cgroup2'));
  if (cg2.mounted) log.info(`cgroup v2 was not mounted: mounted it at ${cg2.path}`);
  ensureBpffs(P.LAB_PIN_ROOT, mountCommand('bpf'), { info: (_o, msg) => log.info(msg) });
  return cg2.path;
}

/**
 * Claims the lab name: refuses if the lab exists (its fabric netns or its dir), and creates the lab
 * dir with a non-recursive mkdir, which is atomic, so two concurrent `lab up`s cannot both win.
 */
export async function claimLab(lab: string): Promise<void> {
  const exists = (): LabError =>
    new LabError('NM_LAB_EXISTS', `lab "${lab}" already exists`, {
      hint: `run "nodemesh lab down --name ${lab}" first, or pick another --name`,
    });
  if ((await listNetns()).includes(P.fabricNetns(lab))) throw exists();
  fs.mkdirSync(P.LAB_RUN_ROOT, { recursive: true });
  try {
    fs.mkdirSync(P.labDir(lab));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw exists();
    throw e;
  }
}

/** Kubernetes `$(VAR)` expansion in command and args (`$$(VAR)` stays literal); unknown names stay as written. */
export function expandVars(arg: string, env: Record<string, string>): string {
  return arg.replace(/\$(\$)?\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m: string, escaped: string | undefined, name: string) => {
    if (escaped) return `$(${name})`;
    return env[name] ?? m;
  });
}

function enrollRequest(p: PodState): EnrollRequest {
  return {
    uid: p.uid,
    name: p.name,
    namespace: p.namespace,
    serviceAccount: p.serviceAccount,
    netnsPath: p.netnsPath,
    cgroupPath: p.cgroup,
    ips: [p.ip],
    labels: p.labels,
    annotations: p.annotations,
  };
}

/** Creates one pod like kubelet + a chained CNI: netns + cgroup, enrollment, then the containers. */
async function startPod(state: LabState, plan: AddressPlan, pod: PodState, log: LabLogger): Promise<Started[]> {
  const nodePlan = plan.nodes.find((n) => n.name === pod.node) as NodePlan;
  const podPlan = plan.pods.find((p) => p.netns === pod.netns) as PodPlan;
  const node = state.nodes.find((n) => n.name === pod.node) as NodeState;
  mkCgroup(pod.cgroup);
  await createPod(nodePlan, podPlan);
  pod.created = true;
  writeState(state);
  if (pod.enroll) {
    try {
      await new EnrollClient(node.enrollSocket).enroll(enrollRequest(pod));
    } catch (e) {
      pod.enrollError = (e as Error).message;
      writeState(state);
      throw new LabError('NM_LAB_ENROLL_FAILED', `enrolling pod ${pod.namespace}/${pod.name} with the agent of node ${pod.node} failed: ${(e as Error).message}`, {
        hint: `see the agent log ${node.agentLog}`,
        cause: e,
      });
    }
    pod.enrolled = true;
    log.debug(`pod ${pod.namespace}/${pod.name} enrolled on ${pod.node}`);
  }
  const started: Started[] = [];
  const spec = plan.pods.find((p) => p.netns === pod.netns)?.spec;
  for (const c of pod.containers) {
    const env = { ...pod.env, ...(spec?.containers.find((x) => x.name === c.name)?.env ?? {}) };
    const argv = c.argv.map((a) => expandVars(a, env));
    const s = await startDetached({ cgroup: pod.cgroup, netns: pod.netns, argv, env }, c.log);
    c.proc = s.ref;
    started.push(s);
  }
  writeState(state);
  return started;
}

/**
 * A lab up that failed: the state says so, everything created is torn down, and the error goes on (a LabError,
 * or one the caller calls its `own`, as is; anything else as NM_LAB_UP_FAILED).
 */
export async function failUp(state: LabState, e: unknown, log: LabLogger, own: (e: unknown) => boolean = () => false): Promise<never> {
  state.phase = 'failed';
  state.errors.push((e as Error).message);
  try {
    writeState(state);
  } catch {
    // the lab dir may be the thing that failed; down scans by convention anyway
  }
  log.warn(`lab up failed, tearing down what was created: ${(e as Error).message}`);
  try {
    await labDown({ lab: state.lab, logger: log });
  } catch (downErr) {
    log.warn(`teardown after failed up was incomplete: ${(downErr as Error).message}`);
  }
  if (e instanceof LabError || own(e)) throw e;
  throw new LabError('NM_LAB_UP_FAILED', `lab up failed: ${(e as Error).message}`, { cause: e });
}

/** Namespaces, cgroups and bpf pins need root: refused before anything is created. */
export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError('NM_LAB_NOT_ROOT', 'lab up needs root', { hint: 'network namespaces, cgroups and bpf pins need CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF' });
  }
}

/** What a lab starts from (phase `creating`): everything planned, before the first kernel object exists. */
export function newLabState(lab: string, opts: UpOptions, manifest: LabManifest, plan: AddressPlan, cg2: string): LabState {
  return {
    version: 1,
    lab,
    manifest: path.resolve(opts.file),
    createdAt: new Date().toISOString(),
    phase: 'creating',
    cgroup2Root: cg2,
    labCgroup: P.labCgroup(cg2, lab),
    fabricNetns: plan.fabricNetns,
    pinDir: P.labPinDir(lab),
    binDir: P.binDir(lab),
    logDir: P.logDir(lab),
    agentCommand: opts.agentCommand ?? defaultAgentCommand(),
    agentLogLevel: opts.agentLogLevel ?? 'info',
    agentArgs: opts.agentArgs ?? [],
    cli: opts.cli ?? P.DEFAULT_CLI,
    nodes: plan.nodes.map((n) => nodeState(lab, cg2, n)),
    pods: plan.pods.map((p) => podState(lab, cg2, p)),
    objects: manifest.others.map((o) => ({ kind: o.kind, namespace: o.namespace, name: o.name })),
    errors: [],
  };
}

/**
 * Brings a lab up. Returns once every agent answers /healthz/ready and every pod is enrolled and
 * its containers started. On failure everything created is torn down and the error rethrown
 * (with keepGoing, pod failures are recorded in state.errors instead).
 */
export async function labUp(opts: UpOptions): Promise<LabState> {
  const lab = P.checkLabName(opts.lab ?? P.DEFAULT_LAB);
  const log = opts.logger ?? silentLogger;
  // Parse and plan first: invalid input must create nothing.
  const manifest: LabManifest = loadManifest(opts.file);
  const plan = planAddresses(lab, manifest.pods, namespaceLabels(manifest));
  requireRoot();
  const cg2 = prepareHost(log);
  await claimLab(lab);
  const state = newLabState(lab, opts, manifest, plan, cg2);
  try {
    // Everything planned is in state.json before the first kernel object exists, so `lab down`
    // can always find it (it also scans by naming convention for a crash before this write).
    fs.mkdirSync(state.logDir, { recursive: true });
    writeState(state);
    fs.copyFileSync(opts.file, path.join(P.labDir(lab), 'manifest.yaml'));
    writeCliWrapper(state.binDir, state.cli);
    mkCgroup(state.labCgroup);

    log.info(`creating fabric and ${plan.nodes.length} node(s)`);
    await createFabric(plan);
    for (const n of plan.nodes) {
      checkAborted(opts.signal);
      await createNode(plan, n);
    }

    log.info('starting the control plane');
    writeMeshConfig(state, opts.file);
    provisionNodeTokens(state);
    await spawnControlPlane(state);

    log.info('starting agents');
    const agents: Started[] = [];
    for (const n of state.nodes) {
      const a = await spawnAgent(state, n, state.agentLogLevel);
      n.agent = a.ref;
      agents.push(a);
    }
    writeState(state);
    await Promise.all(
      state.nodes.map(async (n, i) => {
        await waitAgentReady(n.name, n.adminSocket, agents[i] as Started, n.agentLog, opts.agentReadyTimeoutMs ?? 30_000, opts.signal);
        n.ready = true;
      }),
    );
    writeState(state);

    log.info(`starting ${state.pods.length} pod(s)`);
    const watched: { pod: PodState; started: Started[] }[] = [];
    for (const pod of state.pods) {
      checkAborted(opts.signal);
      try {
        watched.push({ pod, started: await startPod(state, plan, pod, log) });
      } catch (e) {
        if (!opts.keepGoing || !(e instanceof LabError) || e.code !== 'NM_LAB_ENROLL_FAILED') throw e;
        state.errors.push(e.message);
        log.warn(e.message);
      }
    }
    // A container that dies at once (typo in its command) is a broken lab: say so now, with its log.
    await sleep(opts.containerGraceMs ?? 300);
    checkAborted(opts.signal);
    for (const { pod, started } of watched) {
      started.forEach((s, i) => {
        const c = pod.containers[i];
        if (!c || !s.exit) return;
        if (s.exit.code === 0 && !s.exit.signal) {
          // One-shot commands are legitimate; a server that exits 0 at once usually is not.
          log.warn(`container ${c.name} of pod ${pod.namespace}/${pod.name} already exited (code 0); log: ${c.log}`);
          return;
        }
        const msg = `container ${c.name} of pod ${pod.namespace}/${pod.name} exited (${s.exit.signal ?? `code ${s.exit.code}`}) right after start; last log lines:\n${logTail(c.log)}`;
        if (!opts.keepGoing) throw new LabError('NM_LAB_CONTAINER_START', msg, { hint: `check its command in ${opts.file}; log: ${c.log}` });
        state.errors.push(msg);
        log.warn(msg);
      });
    }
    const deadAgent = state.nodes.find((n) => !procAlive(n.agent));
    if (deadAgent) {
      throw new LabError('NM_LAB_AGENT_START', `agent of node ${deadAgent.name} exited during lab up; last log lines:\n${logTail(deadAgent.agentLog)}`);
    }
    state.phase = 'ready';
    writeState(state);
    log.info(`lab "${lab}" is up: ${state.nodes.length} node(s), ${state.pods.length} pod(s)`);
    return state;
  } catch (e) {
    return failUp(state, e, log);
  }
}
