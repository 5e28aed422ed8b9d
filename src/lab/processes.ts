// Starts lab processes (agents, containers, exec) inside a netns AND a cgroup, and waits for agents.
//
// A process must be in its cgroup before it creates any socket (a socket's cgroup is fixed at
// creation and cgroup-bpf keys on it), so a tiny sh wrapper writes its own pid into cgroup.procs
// and only then execs nsenter, which execs the command: the pid we record is the command's pid.

import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unixRequest } from '../enroll/client';
import { LabError } from './errors';
import { netnsPath } from './paths';
import { procStartTime, type ProcRef } from './state';
import { sleep } from './run';

const WRAPPER = 'cg="$1"; ns="$2"; shift 2; echo $$ > "$cg/cgroup.procs" || exit 126; exec nsenter --net="$ns" -- "$@"';

export interface InPodCommand {
  cgroup: string;
  netns: string;
  argv: string[];
  env: Record<string, string>;
}

function wrapperArgs(c: InPodCommand): string[] {
  return ['-c', WRAPPER, 'nodemesh-lab', c.cgroup, netnsPath(c.netns), ...c.argv];
}

export interface Started {
  ref: ProcRef;
  child: ChildProcess;
  /** Set once the process exits while we still watch it (during `lab up`). */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

/**
 * Starts a long-running process detached from us (own session), output appended to `logFile`. `passFds`
 * become the child's fds 3, 4, … (a listening socket opened here, in the host's netns).
 */
export async function startDetached(c: InPodCommand, logFile: string, passFds: number[] = []): Promise<Started> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('sh', wrapperArgs(c), { detached: true, stdio: ['ignore', fd, fd, ...passFds], env: c.env });
  } finally {
    fs.closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new LabError('NM_LAB_CONTAINER_START', `cannot start "${c.argv.join(' ')}": ${err.message}`, { cause: err });
  }
  const started: Started = { ref: { pid, startTime: procStartTime(pid) ?? '' }, child, exit: undefined };
  child.on('exit', (code, signal) => {
    started.exit = { code, signal };
  });
  child.unref();
  return started;
}

/** Spawns a command in a pod (not detached): for `lab exec` and captured runs. */
export function spawnInPod(c: InPodCommand, stdio: StdioOptions): ChildProcess {
  return spawn('sh', wrapperArgs(c), { stdio, env: c.env });
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * Runs a command in a pod with the given stdio; resolves with its exit code (128+n for signal n).
 * Signals sent to us are passed on (Ctrl-C already reaches the whole foreground group; `kill`
 * of our pid alone would otherwise orphan the command), so the command decides how to exit.
 */
export function runInPod(c: InPodCommand, stdio: StdioOptions = 'inherit'): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawnInPod(c, stdio);
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    const cleanup = (): void => {
      for (const sig of FORWARDED) process.off(sig, forward);
    };
    child.once('error', (e) => {
      cleanup();
      reject(e);
    });
    child.once('exit', (code, signal) => {
      cleanup();
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}

/** Last lines of a log file, for error messages. */
export function logTail(file: string, lines = 15): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls GET /healthz/ready on the agent's admin socket until 200; fails fast if the agent exits. */
export async function waitAgentReady(node: string, adminSock: string, agent: Started, logFile: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'admin socket not created yet';
  for (;;) {
    if (signal?.aborted) throw new LabError('NM_LAB_UP_FAILED', `interrupted while waiting for the agent of node ${node}`);
    if (agent.exit) {
      throw new LabError(
        'NM_LAB_AGENT_START',
        `agent of node ${node} exited (${agent.exit.signal ?? `code ${agent.exit.code}`}) before it was ready; last log lines:\n${logTail(logFile)}`,
        { hint: `see ${logFile}` },
      );
    }
    if (fs.existsSync(adminSock)) {
      try {
        const res = await unixRequest(adminSock, 'GET', '/healthz/ready', undefined, 2000);
        if (res.status === 200) return;
        last = `/healthz/ready answered ${res.status}: ${res.body.slice(0, 200)}`;
      } catch (e) {
        last = (e as Error).message;
      }
    }
    if (Date.now() > deadline) {
      throw new LabError('NM_LAB_AGENT_NOT_READY', `agent of node ${node} not ready after ${timeoutMs} ms (${last})`, {
        hint: `see its log ${logFile}`,
      });
    }
    await sleep(100);
  }
}

/** Writes `<bin>/nodemesh`, so pod commands can run this package's CLI by name. */
export function writeCliWrapper(bin: string, cli: string): void {
  fs.mkdirSync(bin, { recursive: true });
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const file = path.join(bin, 'nodemesh');
  fs.writeFileSync(file, `#!/bin/sh\nexec ${q(process.execPath)} ${q(cli)} "$@"\n`, { mode: 0o755 });
}
