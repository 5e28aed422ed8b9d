// Runs a long-lived role (agent, control plane): start it, stop it once on SIGTERM/SIGINT, exit with a clear status.

import type { Logger } from '../telemetry/logger';

export interface Daemon {
  /** e.g. "agent": used in the fatal message and on stderr. */
  name: string;
  log: Logger;
  start(): Promise<void>;
  /** Graceful stop, also while start is still running; the process exits 0 when it resolves, 1 when it rejects. */
  stop(): Promise<void>;
  /** Resolves when the daemon has finished on its own (an agent that handed over and drained): exit 0 then. */
  finished?: Promise<void>;
}

/** Starts `d`; a start failure prints one line (message + stable code) and exits 2. */
export async function runDaemon(d: Daemon): Promise<void> {
  let exiting = false;
  const stop = (signal: string): void => {
    if (exiting) return;
    exiting = true;
    d.log.info({ signal }, 'signal received');
    d.stop().then(
      () => {
        d.log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        d.log.error({ err }, 'shutdown failed');
        d.log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  void d.finished?.then(() => {
    if (exiting) return;
    exiting = true;
    d.log.flush();
    process.exit(0);
  });
  try {
    await d.start();
  } catch (err) {
    if (exiting) return;
    const e = err as { code?: string; message?: string };
    d.log.fatal({ err, code: e.code }, `${d.name} cannot start: ${e.message}`);
    d.log.flush();
    process.stderr.write(`nodemesh ${d.name}: ${e.message}${e.code ? ` [${e.code}]` : ''}\n`);
    process.exit(2);
  }
}
