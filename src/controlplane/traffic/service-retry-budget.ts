// The rate budget for retries to one Service (Linkerd's model: retries may add `ratio` of the Service's request
// rate, at least `minRetriesPerSecond`, counted over `ttl`), set with annotations on the Service, since
// neither Gateway API nor Istio has a field for it:
//
//   metadata:
//     annotations:
//       nodemesh.io/retry-budget-ratio: "0.2"               # retries per request, 0-1000 (default 0.2)
//       nodemesh.io/retry-budget-min-retries-per-second: "10" # floor, so low rates can still retry (default 10)
//       nodemesh.io/retry-budget-ttl: "10s"                # the window (1s-60s, default 10s)
//
// It travels in the Service's clusters as filter_metadata.nodemesh.retryBudget (Envoy has no such field).

import type { Checker } from '../checker';
import { goDuration } from './go-duration';

export const RETRY_BUDGET_ANNOTATIONS = {
  ratio: 'nodemesh.io/retry-budget-ratio',
  minPerSecond: 'nodemesh.io/retry-budget-min-retries-per-second',
  ttl: 'nodemesh.io/retry-budget-ttl',
} as const;

/** Linkerd's defaults (and the agent's when a cluster says nothing). */
export const DEFAULT_RETRY_BUDGET = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 };

/** The budget the annotations ask for (unset ones at their defaults), or undefined when none is set. */
export function serviceRetryBudget(c: Checker, annotations: Record<string, string>): typeof DEFAULT_RETRY_BUDGET | undefined {
  const a = RETRY_BUDGET_ANNOTATIONS;
  if (annotations[a.ratio] === undefined && annotations[a.minPerSecond] === undefined && annotations[a.ttl] === undefined) return undefined;
  const out = { ...DEFAULT_RETRY_BUDGET };
  const path = (k: string): (string | number)[] => ['metadata', 'annotations', k];
  const ratio = annotations[a.ratio];
  if (ratio !== undefined) {
    const n = Number(ratio);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(ratio) || n > 1000) c.fail(path(a.ratio), `"${ratio}" must be a number 0-1000 (retries allowed per request; 0.2 adds at most 20 %)`);
    else out.ratio = n;
  }
  const floor = annotations[a.minPerSecond];
  if (floor !== undefined) {
    if (!/^[0-9]{1,6}$/.test(floor)) c.fail(path(a.minPerSecond), `"${floor}" must be a whole number 0-999999 (retries per second always allowed)`);
    else out.minPerSecond = Number(floor);
  }
  const ttl = annotations[a.ttl];
  if (ttl !== undefined) {
    const ms = goDuration(c, ttl, path(a.ttl), 1000);
    if (ms !== undefined && ms > 60_000) c.fail(path(a.ttl), `"${ttl}" must be at most 60s (the window is kept per second)`);
    else if (ms !== undefined) out.ttlMs = ms;
  }
  return out;
}
