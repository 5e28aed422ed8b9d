// Runs a command in a lab pod through the real CLI (`nodemesh lab exec`) and captures its output.

import { execFile } from 'node:child_process';
import { DEFAULT_CLI } from './paths';

export interface CaptureResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function labExecCapture(lab: string, pod: string, argv: string[], timeoutMs = 60_000): Promise<CaptureResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DEFAULT_CLI, 'lab', 'exec', '--name', lab, pod, '--', ...argv],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}
