// A mesh destination's 15008 that refuses the TCP connection has no agent listening right now: its node's agent
// is restarting (stopped and started again, or crashed and restarted). The client agent holds the
// application's connection and dials again for a little while, so a restart costs the caller latency, not a
// failed connection.

import { HboneConnectError } from './hbone/errors';

/** How long refused dials are retried (within the connect timeout): an agent restart, not a pod that is gone. */
export const REFUSED_RETRY_BUDGET_MS = 5000;

function refused(err: unknown): boolean {
  return err instanceof HboneConnectError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
}

/**
 * Runs `dial`, again after 50, 100, 200, 400, 500 … ms while it fails with ECONNREFUSED, for up to `budgetMs`;
 * stops early when `gone()` (the client went away). Every retry calls `retried()`.
 */
export async function retryWhileRefused<T>(dial: () => Promise<T>, opts: { budgetMs: number; gone: () => boolean; retried: () => void }): Promise<T> {
  const deadline = Date.now() + opts.budgetMs;
  for (let delay = 50; ; delay = Math.min(2 * delay, 500)) {
    try {
      return await dial();
    } catch (err) {
      if (!refused(err) || Date.now() + delay > deadline || opts.gone()) throw err;
      opts.retried();
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
