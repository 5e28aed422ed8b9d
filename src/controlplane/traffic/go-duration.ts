// Durations as Istio and Kubernetes CRDs write them (Go's time.ParseDuration form: "30s", "1m30s", "1.5s",
// "250ms"), read into milliseconds with the field path of anything that is not one.

import type { Checker, FieldPath } from '../checker';

const GO_DURATION = /^(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms|us|µs|ns))+$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };
/** Bounded so no sum of units overflows what a timer or a protobuf Duration can hold. */
const MAX_MS = 10 * 365 * 24 * 3_600_000;

/** A positive Go duration in whole milliseconds (at least `minMs`), or undefined with the problem recorded. */
export function goDuration(c: Checker, v: unknown, path: FieldPath, minMs = 0): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !GO_DURATION.test(v)) {
    c.fail(path, `${JSON.stringify(v)} is not a duration (like 30s, 1m30s, 1.5s or 250ms)`);
    return undefined;
  }
  let ms = 0;
  for (const [, n, u] of v.matchAll(/([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)/g)) ms += Number(n) * UNIT_MS[u!]!;
  ms = Math.round(ms);
  if (ms > MAX_MS) {
    c.fail(path, `"${v}" is longer than ten years`);
    return undefined;
  }
  if (ms < minMs) {
    c.fail(path, `"${v}" must be at least ${minMs} ms`);
    return undefined;
  }
  return ms;
}
