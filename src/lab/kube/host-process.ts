// Starts a long-running lab process in the host's network namespace (the API server, etcd, the API proxy) but in a
// cgroup of the lab, so `lab down` stops it with the rest (cgroup.kill), and it outlives `lab up`.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LabError } from '../errors';
import type { Started } from '../processes';
import { procStartTime } from '../state';

// The pid is in its cgroup before the command runs: the shell moves itself, then execs (same pid).
const WRAPPER = 'cg="$1"; shift; echo $$ > "$cg/cgroup.procs" || exit 126; exec "$@"';

export async function startOnHost(cgroup: string, argv: string[], env: Record<string, string>, logFile: string): Promise<Started> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('sh', ['-c', WRAPPER, 'nodemesh-lab', cgroup, ...argv], { detached: true, stdio: ['ignore', fd, fd], env });
  } finally {
    fs.closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new LabError('NM_LAB_COMMAND_FAILED', `cannot start "${argv.join(' ')}": ${err.message}`, { cause: err });
  }
  const started: Started = { ref: { pid, startTime: procStartTime(pid) ?? '' }, child, exit: undefined };
  child.on('exit', (code, signal) => {
    started.exit = { code, signal };
  });
  child.unref();
  return started;
}

export function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root', ...extra };
}
