// Invokes a CNI conflist the way a container runtime does (libcni): each plugin of the list in order for ADD and
// CHECK (prevResult threaded through), in reverse for DEL, with CNI_* in the environment and the network config on
// stdin; a failed ADD is followed by a DEL of the whole list, as runtimes do. Plugins run in `hostNetns` (a lab
// node's namespace stands in for the host's), so the host's own namespace is never touched; `here` names plugin
// types that run where the caller runs instead. Plugins run asynchronously: an agent may share this process.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { primaryConflist } from '../../cni/install';
import { LabKubeError } from './errors';

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
  /** K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID, IP, ... */
  args?: Record<string, string>;
  /** Directories searched for plugin executables, first match wins (CNI_PATH). */
  binDirs: string[];
  /** Name under /run/netns where plugins run. */
  hostNetns: string;
  /** Plugin types run in the caller's namespace instead of `hostNetns`. */
  here?: string[];
  /** Per plugin; default 30 s. */
  timeoutMs?: number;
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
      fs.accessSync(path.join(d, type), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (!dir) return Promise.resolve({ type, exit: 127, stdout: '', stderr: `plugin ${type} not found in ${call.binDirs.join(':')}` });
  const bin = path.join(dir, type);
  const argv = call.here?.includes(type) ? [bin] : ['nsenter', `--net=/run/netns/${call.hostNetns}`, '--', bin];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timeoutMs = call.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => (stderr += err.message));
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
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

/** The network a runtime uses: the first *.conflist of `confDir` by name, read afresh for every pod. */
export function readConflist(confDir: string): { file: string; list: Conflist } {
  let file: string;
  try {
    file = primaryConflist(confDir);
  } catch (err) {
    throw new LabKubeError('NM_LAB_KUBE_CNI', (err as Error).message, { cause: err });
  }
  try {
    const list = JSON.parse(fs.readFileSync(file, 'utf8')) as Conflist;
    if (!Array.isArray(list.plugins) || typeof list.cniVersion !== 'string') throw new Error('no cniVersion or no plugins list');
    return { file, list };
  } catch (err) {
    throw new LabKubeError('NM_LAB_KUBE_CNI', `the CNI config ${file} cannot be used: ${(err as Error).message}`, { cause: err });
  }
}

/** One line per plugin run: what a failed chain says, for error messages. */
export function describeRuns(runs: PluginRun[]): string {
  return runs.map((r) => `${r.type}: exit ${r.exit}${r.stdout.trim() ? ` ${r.stdout.trim().slice(0, 300)}` : ''}${r.stderr.trim() ? ` (${r.stderr.trim().slice(0, 300)})` : ''}`).join('; ');
}
