// Fuzz target cni-stdin: the nodemesh-cni plugin as a container runtime runs it (src/cni/plugin.ts runPlugin):
// the network configuration on stdin (with the previous plugin's result) from the input, the CNI environment
// and the agent's answer chosen by the input; the agent and the API are fakes.
//
// Invariant:
// - runPlugin never throws or rejects, whatever the stdin: the runtime always gets either a result or CNI error
//   JSON, never a stack trace (nodemesh-cni's main does not catch a rejection);
// - exit 1 comes with one line of error JSON: {cniVersion, code (an integer), msg (a string)};
// - exit 0 comes with nothing (DEL, STATUS, GC) or one JSON object, the previous result passed through (for
//   ADD and CHECK) or the supported versions (VERSION);
// - what it sends the agent names the pod from CNI_ARGS and carries only the addresses of prevResult.

import { AgentDownError, AgentRefusedError, runPlugin, type PluginDeps } from '../../../src/cni/plugin';
import type { CniEvent } from '../../../src/enroll/cni-protocol';
import { FuzzInput, jsonValue } from '../input';
import { check, type FuzzTarget } from '../target';

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC', 'add', ''];
const ARGS = ['IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1', 'K8S_POD_NAMESPACE=default', '', 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b=c;;='];
const NETNS = ['/proc/self/ns/net', '/var/run/netns/gone', ''];
const AGENT = ['enrolled', 'not-enrolled', 'down', 'refused-400', 'refused-500', 'no-netns'] as const;

const KEYS = ['cniVersion', 'name', 'type', 'prevResult', 'ips', 'address', 'interface', 'interfaces', 'enrollSocket', 'kubeconfig', 'routes', 'gateway', 'sandbox'];

function structured(input: FuzzInput): Record<string, unknown> {
  const conf: Record<string, unknown> = { cniVersion: input.pick(['1.0.0', '0.3.1', '0.4.0', '2.0.0']), name: 'k8s-pod-network', type: 'nodemesh-cni' };
  const prev: Record<string, unknown> = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/proc/self/ns/net' }] };
  prev.ips = input.bool() ? [{ address: '198.19.1.5/24', interface: 0 }, ...[jsonValue(input, KEYS)]] : jsonValue(input, KEYS);
  for (let n = input.int(3); n > 0; n--) prev[input.pick(KEYS)] = jsonValue(input, KEYS);
  conf.prevResult = input.int(8) === 0 ? jsonValue(input, KEYS) : prev;
  for (let n = input.int(3); n > 0; n--) conf[input.pick(KEYS)] = jsonValue(input, KEYS);
  return conf;
}

async function run(data: Buffer): Promise<void> {
  const input = new FuzzInput(data);
  const env: NodeJS.ProcessEnv = {
    CNI_COMMAND: input.pick(COMMANDS),
    CNI_CONTAINERID: input.bool() ? 'c1' : '',
    CNI_NETNS: input.pick(NETNS),
    CNI_IFNAME: 'eth0',
    CNI_ARGS: input.bool() ? input.pick(ARGS) : input.string(64),
  };
  const agentSays = input.pick(AGENT);
  const failClosed = input.pick([true, false, null]);
  // Raw text (the seeds, mutated byte by byte), or a configuration built field by field, where each field may
  // be any JSON value: how type confusion in prevResult is reached.
  const stdin = input.bool() ? input.rest().toString('utf8') : JSON.stringify(structured(input));
  const sent: CniEvent[] = [];
  const deps: PluginDeps = {
    agent: async (_socket, ev) => {
      sent.push(ev);
      if (agentSays === 'down') throw new AgentDownError('connect ENOENT');
      if (agentSays === 'refused-400') throw new AgentRefusedError(400, 'NM_ENROLL_BAD_REQUEST', 'invalid CNI request');
      if (agentSays === 'refused-500') throw new AgentRefusedError(500, 'NM_ENROLL_INTERNAL', 'internal');
      if (agentSays === 'no-netns') throw new AgentRefusedError(409, 'NM_ENROLL_NO_NETNS', 'netns gone');
      return { enrolled: agentSays === 'enrolled', reason: agentSays === 'enrolled' ? undefined : 'opted out' };
    },
    podFailClosed: async () => failClosed,
    log: () => undefined,
  };
  const out = await runPlugin(env, stdin, deps);
  check(out.exit === 0 || out.exit === 1, `exit ${out.exit}`);
  if (out.exit === 1) {
    check(out.stdout.endsWith('\n') && !out.stdout.slice(0, -1).includes('\n'), 'error JSON is not one line');
    const e = JSON.parse(out.stdout) as { cniVersion?: unknown; code?: unknown; msg?: unknown };
    check(typeof e.cniVersion === 'string' && Number.isInteger(e.code) && typeof e.msg === 'string', () => `malformed CNI error ${out.stdout}`);
  } else if (out.stdout !== '') {
    const r = JSON.parse(out.stdout) as unknown;
    check(typeof r === 'object' && r !== null && !Array.isArray(r), () => `result is not a JSON object: ${out.stdout}`);
  }
  for (const ev of sent) {
    check(typeof ev.namespace === 'string' && ev.namespace.length > 0 && typeof ev.name === 'string' && ev.name.length > 0, 'an event without the pod');
    check(Array.isArray(ev.ips) && ev.ips.every((ip) => typeof ip === 'string'), () => `ips ${JSON.stringify(ev.ips)}`);
  }
}

export const target: FuzzTarget = {
  mode: 'async',
  maxLen: 4096,
  dict: ['"cniVersion"', '"1.0.0"', '"0.3.1"', '"prevResult"', '"ips"', '"address"', '"interfaces"', '"enrollSocket"', '"kubeconfig"', '"type"', '"nodemesh-cni"', 'null', '[]', '{}'],
  run,
};
