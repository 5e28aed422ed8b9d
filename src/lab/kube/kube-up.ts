// `lab up --kubernetes`: the same lab file and topology as `lab up`, with a real API server in the middle. The lab
// registers its nodes and pods there as a kubelet would, wires pods with the reference CNI plugins (nodemesh-cni
// chained last by each node's agent enrolls them), and the control plane and agents take all their config from the
// API server. `lab down` removes all of it (see kube-down.ts).

import fs from 'node:fs';
import path from 'node:path';
import { LabError } from '../errors';
import { silentLogger, type LabLogger } from '../log';
import { loadManifest, parseManifest, type PodSpec } from '../manifest';
import { inCidr, planAddresses, type PodPlan } from '../address-plan';
import { mkCgroup } from '../cgroups';
import { createFabric } from '../topology';
import { spawnAgent } from '../agent-control';
import * as P from '../paths';
import { logTail, waitAgentReady, writeCliWrapper, type Started } from '../processes';
import { sleep } from '../run';
import { procAlive, readState, writeState, type LabState, type PodState } from '../state';
import { checkAborted, claimLab, failUp, newLabState, podState, prepareHost, requireRoot, type UpOptions } from '../up';
import { startApiProxy, startOwnApiServer, useGivenApiServer } from './api-access';
import { KubeApi } from './api-client';
import { applyBootstrap, applyManifestObjects, ensurePodPrerequisites, namespaceLabels, rawPods } from './apply';
import { LabKubeError } from './errors';
import { createKubeNode } from './kube-network';
import { podWanted, registerNodes, runKubePod, type KubeletContext } from './kubelet';
import { createMeshWorkloads, prepareKubeAgent, startKubeControlPlane, waitCniInstalled, writeMeshWorkloadStatus } from './mesh-processes';

export interface KubeUpOptions extends UpOptions {
  /** An existing API server to use instead of starting one. */
  kubeconfig?: string;
}

/** Pods whose IP the file pins go first, so host-local cannot hand their address to another pod. */
function runOrder(pods: PodPlan[]): PodPlan[] {
  return [...pods.filter((p) => p.spec.podIP), ...pods.filter((p) => !p.spec.podIP)];
}

async function connect(state: LabState): Promise<KubeApi> {
  if (!state.kubernetes) throw new LabError('NM_LAB_NOT_FOUND', `lab ${state.lab} is not in Kubernetes mode`, { hint: 'start it with "nodemesh lab up --kubernetes"' });
  return KubeApi.load(state.kubernetes.adminKubeconfig);
}

/** A container that died at once is a broken lab, as in the file mode. */
function checkContainers(state: LabState, watched: { pod: PodState; started: Started[] }[], opts: KubeUpOptions, log: LabLogger): void {
  for (const { pod, started } of watched) {
    started.forEach((s, i) => {
      const c = pod.containers[i];
      if (!c || !s.exit) return;
      if (s.exit.code === 0 && !s.exit.signal) return log.warn(`container ${c.name} of pod ${pod.namespace}/${pod.name} already exited (code 0); log: ${c.log}`);
      const msg = `container ${c.name} of pod ${pod.namespace}/${pod.name} exited (${s.exit.signal ?? `code ${s.exit.code}`}) right after start; last log lines:\n${logTail(c.log)}`;
      if (!opts.keepGoing) throw new LabError('NM_LAB_CONTAINER_START', msg, { hint: `check its command in ${opts.file}; log: ${c.log}` });
      state.errors.push(msg);
      log.warn(msg);
    });
  }
}

/** Runs pods as their nodes' kubelet; with keepGoing an enrollment failure is a warning. */
async function runPods(ctx: KubeletContext, plans: PodPlan[], raw: Map<string, unknown>, opts: Pick<KubeUpOptions, 'keepGoing' | 'signal'> & { requireEnrollment?: boolean }): Promise<{ pod: PodState; started: Started[] }[]> {
  const labels = await namespaceLabels(ctx, plans.map((p) => p.spec.namespace));
  const watched: { pod: PodState; started: Started[] }[] = [];
  for (const plan of runOrder(plans)) {
    checkAborted(opts.signal);
    const pod = ctx.state.pods.find((p) => p.key === plan.key) as PodState;
    pod.enroll = podWanted(plan.spec, labels.get(plan.spec.namespace));
    try {
      watched.push({ pod, started: await runKubePod(ctx, pod, plan.spec, raw.get(`${plan.spec.namespace}/${plan.spec.name}`) as Record<string, unknown> | undefined, opts) });
    } catch (e) {
      if (!opts.keepGoing || !(e instanceof LabError) || e.code !== 'NM_LAB_ENROLL_FAILED') throw e;
      ctx.state.errors.push(e.message);
      ctx.log.warn(e.message);
    }
  }
  return watched;
}

export async function labUpKubernetes(opts: KubeUpOptions): Promise<LabState> {
  const lab = P.checkLabName(opts.lab ?? P.DEFAULT_LAB);
  const log = opts.logger ?? silentLogger;
  // Parse and plan first: invalid input must create nothing.
  const manifest = loadManifest(opts.file);
  const plan = planAddresses(lab, manifest.pods);
  const raw = rawPods(fs.readFileSync(opts.file, 'utf8'));
  requireRoot();
  if (opts.kubeconfig !== undefined && !fs.existsSync(opts.kubeconfig)) {
    throw new LabKubeError('NM_LAB_KUBE_KUBECONFIG', `no kubeconfig at ${opts.kubeconfig}`, { hint: 'give the path of an existing kubeconfig, or leave --kubeconfig out to start an API server' });
  }
  const cg2 = prepareHost(log);
  await claimLab(lab);
  const state: LabState = {
    ...newLabState(lab, opts, manifest, plan, cg2),
    // IPs come from host-local at ADD; cgroups are named after the uids the API server gives.
    pods: plan.pods.map((p) => ({ ...podState(lab, cg2, p), ip: '', uid: '' })),
    kubernetes: { server: '', adminKubeconfig: '', labServer: '', created: [], labelled: [], sandboxes: {} },
  };
  try {
    fs.mkdirSync(state.logDir, { recursive: true });
    writeState(state);
    fs.copyFileSync(opts.file, path.join(P.labDir(lab), 'manifest.yaml'));
    writeCliWrapper(state.binDir, state.cli);
    mkCgroup(state.labCgroup);

    log.info(`creating fabric and ${plan.nodes.length} node(s)`);
    await createFabric(plan);
    for (const n of plan.nodes) {
      checkAborted(opts.signal);
      await createKubeNode(plan, n);
    }

    const api = opts.kubeconfig === undefined ? await startOwnApiServer(state, log, opts.signal) : await useGivenApiServer(state, opts.kubeconfig);
    log.info(`API server ${state.kubernetes!.server} (kubeconfig ${state.kubernetes!.adminKubeconfig}); on the lab's network at https://198.18.0.254:6443`);
    await startApiProxy(state);
    const ctx: KubeletContext = { state, api, log };
    checkAborted(opts.signal);
    await applyBootstrap(ctx);
    await createMeshWorkloads(ctx);
    await registerNodes(ctx);
    await applyManifestObjects(ctx, manifest);

    log.info('starting the control plane (config from the API server)');
    await startKubeControlPlane(ctx);

    log.info('starting agents');
    const agents: Started[] = [];
    for (const n of state.nodes) {
      checkAborted(opts.signal);
      await prepareKubeAgent(ctx, n);
      const a = await spawnAgent(state, n, state.agentLogLevel);
      n.agent = a.ref;
      agents.push(a);
    }
    writeState(state);
    await Promise.all(
      state.nodes.map(async (n, i) => {
        await waitAgentReady(n.name, n.adminSocket, agents[i] as Started, n.agentLog, opts.agentReadyTimeoutMs ?? 30_000, opts.signal);
        await waitCniInstalled(state, n);
        n.ready = true;
      }),
    );
    writeState(state);
    await writeMeshWorkloadStatus(ctx);

    log.info(`starting ${state.pods.length} pod(s) through CNI`);
    const watched = await runPods(ctx, plan.pods, raw, opts);
    await sleep(opts.containerGraceMs ?? 300);
    checkAborted(opts.signal);
    checkContainers(state, watched, opts, log);
    const deadAgent = state.nodes.find((n) => !procAlive(n.agent));
    if (deadAgent) throw new LabError('NM_LAB_AGENT_START', `agent of node ${deadAgent.name} exited during lab up; last log lines:\n${logTail(deadAgent.agentLog)}`);
    state.phase = 'ready';
    writeState(state);
    log.info(`lab "${lab}" is up: ${state.nodes.length} node(s), ${state.pods.length} pod(s), API server ${state.kubernetes!.server}`);
    return state;
  } catch (e) {
    return failUp(state, e, log, (x) => x instanceof LabKubeError);
  }
}

/**
 * Adds pods to a running Kubernetes-mode lab, as a kubelet runs pods bound to its node after the fact: their Pod
 * objects, sandboxes wired by the node's current conflist (with nodemesh-cni only if the node's agent has chained
 * it), containers and status. `yaml` holds Pod documents (lab file syntax) for existing nodes.
 */
export async function addKubePods(labName: string, yaml: string, opts: { logger?: LabLogger; source?: string } = {}): Promise<PodState[]> {
  const state = readState(P.checkLabName(labName));
  const api = await connect(state);
  const log = opts.logger ?? silentLogger;
  const manifest = parseManifest(yaml, opts.source ?? '(added pods)');
  const specs: PodSpec[] = manifest.pods;
  const plans: PodPlan[] = [];
  for (const spec of specs) {
    const node = state.nodes.find((n) => n.name === spec.nodeName);
    if (!node) throw new LabKubeError('NM_LAB_KUBE_PLAN', `${spec.loc.file}:${spec.loc.line}: pod ${spec.namespace}/${spec.name} names node ${spec.nodeName}, which lab ${state.lab} does not have`, { hint: `nodes: ${state.nodes.map((n) => n.name).join(', ')}` });
    if (spec.podIP && !inCidr(spec.podIP, node.cidr)) throw new LabKubeError('NM_LAB_KUBE_PLAN', `${spec.loc.file}:${spec.loc.line}: status.podIP ${spec.podIP} is outside node ${node.name}'s pod range ${node.cidr}`);
    if (state.pods.some((p) => p.namespace === spec.namespace && p.name === spec.name)) {
      throw new LabKubeError('NM_LAB_KUBE_PLAN', `${spec.loc.file}:${spec.loc.line}: lab ${state.lab} already has a pod ${spec.namespace}/${spec.name}`);
    }
    const base = P.podKey(spec.namespace, spec.name);
    const taken = state.pods.some((p) => p.key === base) || plans.some((p) => p.key === base) || state.nodes.some((n) => n.netns === P.podNetns(state.lab, base));
    const key = taken ? P.podKeyDisambiguated(spec.namespace, spec.name) : base;
    const p: PodPlan = { spec, key, netns: P.podNetns(state.lab, key), ip: '', hostIf: '', node: node.name, enroll: true };
    plans.push(p);
    state.pods.push({ ...podState(state.lab, state.cgroup2Root, p), uid: '' });
  }
  writeState(state);
  const ctx: KubeletContext = { state, api, log };
  await ensurePodPrerequisites(ctx, specs, new Set());
  const raw = rawPods(yaml);
  const watched = await runPods(ctx, plans, raw, { requireEnrollment: false });
  await sleep(300);
  checkContainers(state, watched, { file: opts.source ?? '(added pods)' }, log);
  writeState(state);
  return watched.map((w) => w.pod);
}
