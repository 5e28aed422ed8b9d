// When to renew: rotation at a jittered fraction of the remaining lifetime, and exponential backoff after failures.

export interface RotationPolicy {
  /** Fraction of the lifetime after which to renew, drawn uniformly from [lo, hi]. Default [0.45, 0.55]. */
  rotateAt: readonly [number, number];
  /** First retry delay after a failed request. Default 1 s. */
  retryInitialMs: number;
  /** Longest retry delay. Default 60 s. */
  retryMaxMs: number;
  /** Never rotate sooner than this after an issuance (guards against a CA handing out near-expired certs). */
  minRotationMs: number;
}

export const DEFAULT_ROTATION: RotationPolicy = { rotateAt: [0.45, 0.55], retryInitialMs: 1000, retryMaxMs: 60_000, minRotationMs: 250 };

/**
 * Rotation time for a certificate received at `now`. The lifetime counts from max(notBefore, now): the CA
 * backdates notBefore for clock skew, and that slack must not pull the rotation into the past.
 */
export function rotationTime(now: number, notBefore: number, notAfter: number, random: number, p: RotationPolicy = DEFAULT_ROTATION): number {
  const start = Math.max(notBefore, now);
  const lifetime = Math.max(0, notAfter - start);
  const [lo, hi] = p.rotateAt;
  const at = start + lifetime * (lo + (hi - lo) * random);
  return Math.max(at, now + p.minRotationMs);
}

/** Delay before retry number `attempt` (1-based): doubling from the initial delay up to the maximum, in [d/2, d]. */
export function retryDelay(attempt: number, random: number, p: RotationPolicy = DEFAULT_ROTATION): number {
  const d = Math.min(p.retryMaxMs, p.retryInitialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return d / 2 + (d / 2) * random;
}

/**
 * Rotation time for a saved certificate presented again by a restarted agent: the original schedule (a jittered
 * fraction of its whole lifetime from notBefore), or soon when that moment has passed. Counting from the restart
 * instead would push each renewal later with every restart.
 */
export function restoredRotationTime(now: number, notBefore: number, notAfter: number, random: number, p: RotationPolicy = DEFAULT_ROTATION): number {
  const [lo, hi] = p.rotateAt;
  const at = notBefore + Math.max(0, notAfter - notBefore) * (lo + (hi - lo) * random);
  return Math.max(at, now + p.minRotationMs);
}
