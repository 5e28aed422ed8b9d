// Invokes a CNI conflist the way a container runtime does (libcni): each plugin of the list in order for ADD and
// CHECK (prevResult threaded through), in reverse for DEL, with CNI_* in the environment and the network config on
// stdin; a failed ADD is followed by a DEL of the whole list, as runtimes do. The plugins that make links run in
// `hostNetns` (the lab node's namespace stands in for the host's), so the root namespace is never touched;
// nodemesh-cni, which only talks to the agent's socket and the API, runs where the test runs (the API server
// listens on this namespace's loopback). Plugins run asynchronously: the agent under test may share this process.

import { spawn } from 'node:child_process';
import fs from 'node:fs';

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

export interface CniCall {
  containerId: string;
  /** Path of the pod's network namespace. */
  netns: string;
  ifname?: string;
  /** K8S_POD_NAMESPACE etc. */
  args?: Record<string, string>;
  /** Directories searched for plugin executables, first match wins. */
  binDirs: string[];
  /** Name under /run/netns where plugins run. */
  hostNetns: string;
}

export interface PluginRun {
  type: string;
  exit: number;
  stdout: string;
  stderr: string;
}

export interface ChainResult {
  ok: boolean;
  /** The last plugin's result (ADD/CHECK), or the failing plugin's error JSON. */
  result: Record<string, unknown> | null;
  runs: PluginRun[];
}

export function runPlugin(type: string, command: string, conf: Record<string, unknown>, call: CniCall): Promise<PluginRun> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_PATH: call.binDirs.join(':'),
    CNI_ARGS: Object.entries({ IgnoreUnknown: '1', ...(call.args ?? {}) })
      .map(([k, v]) => `${k}=${v}`)
      .join(';'),
  };
  const dir = call.binDirs.find((d) => {
    try {
      fs.accessSync(`${d}/${type}`, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (!dir) return Promise.resolve({ type, exit: 127, stdout: '', stderr: `plugin ${type} not found in ${call.binDirs.join(':')}` });
  const argv = type === 'nodemesh-cni' ? [`${dir}/${type}`] : ['nsenter', `--net=/run/netns/${call.hostNetns}`, '--', `${dir}/${type}`];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => (stderr += err.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ type, exit: code ?? 1, stdout, stderr });
    });
    child.stdin.end(JSON.stringify(conf));
  });
}

function parse(s: string): Record<string, unknown> | null {
  try {
    return JSON.parse(s) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export async function runConflist(list: Conflist, command: 'ADD' | 'DEL' | 'CHECK', call: CniCall, cached?: Record<string, unknown>): Promise<ChainResult> {
  const runs: PluginRun[] = [];
  const plugins = command === 'DEL' ? [...list.plugins].reverse() : list.plugins;
  let prev: Record<string, unknown> | undefined = command === 'ADD' ? undefined : cached;
  for (const p of plugins) {
    const conf = { ...p, cniVersion: list.cniVersion, name: list.name, ...(prev ? { prevResult: prev } : {}) };
    const run = await runPlugin(String(p.type), command, conf, call);
    runs.push(run);
    if (run.exit !== 0) {
      if (command === 'ADD') await runConflist(list, 'DEL', call, prev);
      return { ok: false, result: parse(run.stdout), runs };
    }
    if (command === 'ADD') prev = parse(run.stdout) ?? prev;
  }
  return { ok: true, result: prev ?? null, runs };
}
