// Runs host tools (ip, nsenter) and turns a failure into a LabError quoting the command and its stderr.

import { execFile } from 'node:child_process';
import { LabError } from './errors';

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs argv without a shell; rejects with NM_LAB_COMMAND_FAILED including stderr. */
export function run(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const [file, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(0, 5).join('; ');
        reject(
          new LabError('NM_LAB_COMMAND_FAILED', `"${argv.join(' ')}" failed: ${detail}`, {
            hint: file === 'ip' ? 'is iproute2 installed and are you root (CAP_NET_ADMIN)?' : 'are you root?',
            cause: err,
          }),
        );
        return;
      }
      resolve({ stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run, but a failure is only returned (for teardown, where every step must be tried). */
export async function tryRun(argv: string[]): Promise<Error | undefined> {
  try {
    await run(argv);
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

/** `ip -n NS -batch -`: one process per namespace instead of one per command. */
export async function ipBatch(netns: string | undefined, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  const argv = netns ? ['ip', '-n', netns, '-batch', '-'] : ['ip', '-batch', '-'];
  await run(argv, { input: `${lines.join('\n')}\n` });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
