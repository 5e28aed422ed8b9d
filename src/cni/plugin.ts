// nodemesh-cni: a chained CNI plugin (spec 1.0, also 0.3/0.4 configs). It runs after the plugins that wire the pod
// and hands the pod to the node agent's enrollment socket: ADD enrolls, DEL unenrolls, CHECK asks whether a pod that
// should be meshed is. The previous plugin's result passes through untouched; errors are CNI error JSON.
//
// Decided behaviour:
// - the agent is not running (no socket, refused, timed out): ADD lets the pod start unmeshed (the agent's own
//   reconcile enrolls it when it comes back), unless the pod is annotated nodemesh.io/fail-closed: "true", which
//   the plugin reads from the API with the kubeconfig in its config; then ADD fails with code 11 (try again later);
// - the pod's network namespace is gone: ADD fails with code 3 and nothing is enrolled;
// - DEL always succeeds (the runtime retries DEL forever otherwise): a pod the agent does not know is fine.

import fs from 'node:fs';
import type { CniAnswer, CniEvent } from '../enroll/cni-protocol';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** CNI error codes (spec "Error codes"); 100+ are this plugin's. */
export const CNI_CODE = {
  INCOMPATIBLE_VERSION: 1,
  CONTAINER_UNKNOWN: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_ENROLLED: 100,
  AGENT_REFUSED: 101,
} as const;

export interface PluginConfig {
  cniVersion: string;
  name?: string;
  type: string;
  enrollSocket?: string;
  /** For fail-closed pods when the agent is down: a kubeconfig the plugin may read pods with. */
  kubeconfig?: string;
  prevResult?: { ips?: { address: string }[]; [k: string]: unknown };
  [k: string]: unknown;
}

/** The agent was not reachable at all (as opposed to answering with an error). */
export class AgentDownError extends Error {}

/** The agent answered with an error. */
export class AgentRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PluginDeps {
  /** Sends the event to the agent; throws AgentDownError or AgentRefusedError. */
  agent(socket: string, ev: CniEvent): Promise<CniAnswer>;
  /** true/false from the pod's annotation, null when it cannot be known. */
  podFailClosed(kubeconfig: string | undefined, namespace: string, name: string): Promise<boolean | null>;
  log(line: string): void;
}

export interface PluginOutput {
  stdout: string;
  /** Process exit code: 0 on success, 1 with error JSON on stdout. */
  exit: number;
}

export const DEFAULT_ENROLL_SOCKET = '/run/nodemesh/agent/enroll.sock';

function error(version: string, code: number, msg: string, details?: string): PluginOutput {
  return { stdout: `${JSON.stringify({ cniVersion: version, code, msg, ...(details ? { details } : {}) })}\n`, exit: 1 };
}

/** K8S_POD_NAMESPACE=ns;K8S_POD_NAME=n;K8S_POD_UID=u;IgnoreUnknown=1 */
export function parseCniArgs(args: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (args ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** The addresses of the previous plugin's result (prefix lengths dropped); null when `ips` is not the result schema's list. */
function prevResultIps(prev: PluginConfig['prevResult']): string[] | null {
  const list: unknown = prev?.ips ?? [];
  if (!Array.isArray(list)) return null;
  const out: string[] = [];
  for (const i of list) {
    const address = (i as { address?: unknown } | null)?.address;
    if (typeof i !== 'object' || i === null || typeof address !== 'string') return null;
    const ip = address.replace(/\/\d+$/, '');
    if (ip) out.push(ip);
  }
  return out;
}

export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string, deps: PluginDeps): Promise<PluginOutput> {
  const command = env.CNI_COMMAND;
  if (command === 'VERSION') return { stdout: `${JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS })}\n`, exit: 0 };
  let conf: PluginConfig;
  try {
    conf = JSON.parse(stdin) as PluginConfig;
    if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) throw new Error('the network configuration must be a JSON object');
  } catch (err) {
    return error('1.0.0', CNI_CODE.DECODE, 'nodemesh-cni: cannot decode the network configuration on stdin', (err as Error).message);
  }
  const version = typeof conf.cniVersion === 'string' ? conf.cniVersion : '';
  if (!SUPPORTED_VERSIONS.includes(version)) {
    return error('1.0.0', CNI_CODE.INCOMPATIBLE_VERSION, `nodemesh-cni: unsupported cniVersion ${JSON.stringify(conf.cniVersion)}`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK') {
    if (command === 'STATUS' || command === 'GC') return { stdout: '', exit: 0 };
    return error(version, CNI_CODE.INVALID_ENV, `nodemesh-cni: unknown CNI_COMMAND ${JSON.stringify(command ?? '')}`, 'expected ADD, DEL, CHECK or VERSION');
  }
  const passThrough = (): PluginOutput => ({ stdout: command === 'DEL' ? '' : `${JSON.stringify({ ...conf.prevResult, cniVersion: version })}\n`, exit: 0 });
  if (command !== 'DEL' && (typeof conf.prevResult !== 'object' || conf.prevResult === null)) {
    return error(version, CNI_CODE.INVALID_CONFIG, 'nodemesh-cni must be chained after the plugins that wire the pod: no prevResult', 'add it as the last plugin of the node\'s conflist');
  }
  for (const v of ['CNI_CONTAINERID', 'CNI_IFNAME'] as const) {
    if (!env[v]) return error(version, CNI_CODE.INVALID_ENV, `nodemesh-cni: ${v} is not set`, 'the container runtime sets it');
  }
  if (command !== 'DEL' && !env.CNI_NETNS) return error(version, CNI_CODE.INVALID_ENV, 'nodemesh-cni: CNI_NETNS is not set', 'the container runtime sets it');
  const args = parseCniArgs(env.CNI_ARGS);
  const namespace = args.K8S_POD_NAMESPACE;
  const name = args.K8S_POD_NAME;
  if (!namespace || !name) {
    // Not a Kubernetes pod (or a runtime that does not say which): nothing to enroll.
    deps.log(`nodemesh-cni: ${command} ${env.CNI_CONTAINERID}: no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS; passing through`);
    return passThrough();
  }
  const pod = `${namespace}/${name}`;
  const netnsPath = env.CNI_NETNS ?? '';
  if (command === 'ADD' && !fs.existsSync(netnsPath)) {
    return error(version, CNI_CODE.CONTAINER_UNKNOWN, `nodemesh-cni: the network namespace ${netnsPath} of pod ${pod} does not exist`, 'the pod sandbox went away before it was wired; nothing was enrolled');
  }
  const ips = prevResultIps(conf.prevResult);
  if (ips === null) {
    return error(version, CNI_CODE.INVALID_CONFIG, 'nodemesh-cni: prevResult.ips is not a list of {"address": "IP/prefix"} objects', 'check the plugin chained before nodemesh-cni: its result is malformed');
  }
  const ev: CniEvent = { command, namespace, name, uid: args.K8S_POD_UID, containerId: env.CNI_CONTAINERID!, netnsPath, ips };
  const socket = typeof conf.enrollSocket === 'string' ? conf.enrollSocket : DEFAULT_ENROLL_SOCKET;
  try {
    const answer = await deps.agent(socket, ev);
    deps.log(`nodemesh-cni: ${command} ${pod}: ${answer.enrolled ? 'enrolled' : `not enrolled (${answer.reason ?? 'not meshed'})`}`);
    return passThrough();
  } catch (err) {
    if (command === 'DEL') {
      deps.log(`nodemesh-cni: DEL ${pod}: ${(err as Error).message}; the agent reconciles on its own`);
      return passThrough();
    }
    if (err instanceof AgentRefusedError) {
      if (err.code === 'NM_ENROLL_NO_NETNS') {
        return error(version, CNI_CODE.CONTAINER_UNKNOWN, `nodemesh-cni: the network namespace of pod ${pod} is gone: ${err.message}`, 'nothing was enrolled');
      }
      if (err.status < 500) return error(version, command === 'CHECK' ? CNI_CODE.NOT_ENROLLED : CNI_CODE.AGENT_REFUSED, `nodemesh-cni: the node agent refused pod ${pod}: ${err.message}`, err.code);
    }
    if (command === 'CHECK') return error(version, CNI_CODE.TRY_AGAIN_LATER, `nodemesh-cni: cannot check pod ${pod}: ${(err as Error).message}`, 'is the nodemesh agent running on this node?');
    const failClosed = await deps.podFailClosed(typeof conf.kubeconfig === 'string' ? conf.kubeconfig : undefined, namespace, name);
    if (failClosed === true) {
      return error(
        version,
        CNI_CODE.TRY_AGAIN_LATER,
        `nodemesh-cni: pod ${pod} is annotated nodemesh.io/fail-closed and the node agent cannot enroll it: ${(err as Error).message}`,
        'the pod starts once the nodemesh agent on this node is ready',
      );
    }
    deps.log(`nodemesh-cni: ADD ${pod}: ${(err as Error).message}; failing open (the pod starts unmeshed; the agent enrolls it when it is back)`);
    return passThrough();
  }
}
