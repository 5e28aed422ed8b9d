// The lab's container-runtime side of CNI (src/lab/kube/cni-runtime.ts), as the k8s tier calls it: the plugins that
// make links run in `hostNetns` (the lab node's namespace stands in for the host's), so the root namespace is never
// touched; nodemesh-cni, which only talks to the agent's socket and the API, runs where the test runs (the API
// server listens on this namespace's loopback).

import * as runtime from '../../src/lab/kube/cni-runtime';

export type { ChainResult, Conflist, PluginRun } from '../../src/lab/kube/cni-runtime';
export type CniCall = Omit<runtime.CniCall, 'here'>;

const HERE = ['nodemesh-cni'];

export function runPlugin(type: string, command: string, conf: Record<string, unknown>, call: CniCall): Promise<runtime.PluginRun> {
  return runtime.runPlugin(type, command, conf, { ...call, here: HERE });
}

export function runConflist(list: runtime.Conflist, command: 'ADD' | 'DEL' | 'CHECK', call: CniCall, cached?: Record<string, unknown>): Promise<runtime.ChainResult> {
  return runtime.runConflist(list, command, { ...call, here: HERE }, cached);
}
