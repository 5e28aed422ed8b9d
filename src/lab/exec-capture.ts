// Runs a command in a lab pod and captures its output (tests and the demo drive traffic this way).

import { LabError } from './errors';
import { resolvePod } from './exec';
import { checkLabName } from './paths';
import { spawnInPod } from './processes';
import { readState } from './state';

export interface CaptureResult {
  /** Exit code; 128+n for signal n; 124 when the timeout killed it (like timeout(1)). */
  code: number;
  stdout: string;
  stderr: string;
}

export async function labExecCapture(lab: string, pod: string, argv: string[], timeoutMs = 60_000): Promise<CaptureResult> {
  const state = readState(checkLabName(lab));
  const p = resolvePod(state, pod);
  if (argv.length === 0) throw new LabError('NM_LAB_COMMAND_FAILED', 'labExecCapture needs a command');
  const child = spawnInPod({ cgroup: p.cgroup, netns: p.netns, argv, env: p.env }, ['ignore', 'pipe', 'pipe']);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    // 'close' (not 'exit'): waits until stdout/stderr are fully read.
    child.once('close', (c, sig) => resolve(c ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
  }).finally(() => clearTimeout(timer));
  const stderr = Buffer.concat(err).toString('utf8') + (timedOut ? `\n(lab exec: killed after ${timeoutMs} ms)\n` : '');
  return { code: timedOut ? 124 : code, stdout: Buffer.concat(out).toString('utf8'), stderr };
}
