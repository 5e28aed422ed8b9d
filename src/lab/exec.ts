// `lab exec`: runs a command inside a pod (its netns and cgroup), stdio inherited, exit code returned.

import type { StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import { LabError } from './errors';
import { checkLabName } from './paths';
import { runInPod } from './processes';
import { readState, type LabState, type PodState } from './state';

/** Finds a pod by `ns/name`, or by `name` when only one namespace has it. */
export function resolvePod(state: LabState, ref: string): PodState {
  const slash = ref.indexOf('/');
  const matches =
    slash >= 0
      ? state.pods.filter((p) => p.namespace === ref.slice(0, slash) && p.name === ref.slice(slash + 1))
      : state.pods.filter((p) => p.name === ref);
  const known = state.pods.map((p) => `${p.namespace}/${p.name}`).join(', ');
  if (matches.length === 0) {
    throw new LabError('NM_LAB_POD_NOT_FOUND', `no pod "${ref}" in lab "${state.lab}"`, { hint: `pods: ${known || '(none)'}` });
  }
  if (matches.length > 1) {
    throw new LabError('NM_LAB_POD_AMBIGUOUS', `pod name "${ref}" exists in several namespaces`, {
      hint: `say which: ${matches.map((p) => `${p.namespace}/${p.name}`).join(', ')}`,
    });
  }
  return matches[0] as PodState;
}

export interface ExecOptions {
  lab: string;
  pod: string;
  argv: string[];
  stdio?: StdioOptions;
  env?: Record<string, string>;
}

export async function labExec(opts: ExecOptions): Promise<number> {
  const state = readState(checkLabName(opts.lab));
  const pod = resolvePod(state, opts.pod);
  if (!fs.existsSync(pod.cgroup) || !fs.existsSync(pod.netnsPath)) {
    throw new LabError('NM_LAB_POD_NOT_FOUND', `pod ${pod.namespace}/${pod.name} has no netns or cgroup (lab phase: ${state.phase})`, {
      hint: 'the lab may be half torn down: run "nodemesh lab down" and "lab up" again',
    });
  }
  if (opts.argv.length === 0) throw new LabError('NM_LAB_COMMAND_FAILED', 'lab exec needs a command after "--"');
  const env = { ...pod.env, ...(process.env.TERM ? { TERM: process.env.TERM } : {}), ...opts.env };
  return runInPod({ cgroup: pod.cgroup, netns: pod.netns, argv: opts.argv, env }, opts.stdio ?? 'inherit');
}
