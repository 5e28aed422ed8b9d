// A mesh destination's 15008 that refuses the TCP connection has no agent listening right now: its node's agent
// is restarting (stopped and started again, or crashed and restarted). So does one that resets the connection
// before the TLS handshake completed: it sat in the accept queue of a listener that closed. Either way no stream
// was opened, so dialling again is safe: the client agent holds the application's connection and dials again for
// a little while, and a restart costs the caller latency, not a failed connection.

import { HboneConnectError, HboneTlsError } from './hbone/errors';

/** How long refused dials are retried (within the connect timeout): an agent restart, not a pod that is gone. */
export const REFUSED_RETRY_BUDGET_MS = 5000;

function refused(err: unknown): boolean {
  const code = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
  return (err instanceof HboneConnectError && code === 'ECONNREFUSED') || (err instanceof HboneTlsError && code === 'ECONNRESET');
}

/**
 * Runs `dial`, again after 50, 100, 200, 400, 500 … ms while it is refused (or reset before TLS), for up to `budgetMs`;
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
