// The contract every load-balancing policy implements: pick one endpoint for one request.
//
// - `candidates` are already narrowed by the balance layer (ejected endpoints out, locality applied, the
//   request's previous attempts' hosts out when others remain); a picker never sees an empty list.
// - A picker is created per cluster and may keep state across requests (a rotation, a ring); it must
//   cope with the candidate list changing between calls (config pushes, ejections).
// - It answers synchronously and never throws.

import type { EndpointInfo } from '../../../state/services';
import type { EndpointState } from '../cluster-state';

export interface PickContext {
  /** The cluster's per-endpoint state (requests in flight, latency). */
  state(ep: EndpointInfo): EndpointState;
  /** The request's hash for consistent hashing (hash policies), or null when none applies. */
  hash: number | null;
  random(): number;
  now(): number;
}

export type Picker = (candidates: readonly EndpointInfo[], ctx: PickContext) => EndpointInfo;

/** 32-bit FNV-1a: a fast, well-spread string hash for rings and tables (not for security). */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // A final avalanche (murmur3's fmix32): FNV alone leaves short keys clustered.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export function endpointKey(ep: EndpointInfo): string {
  return `${ep.ip}:${ep.port}`;
}

/** Two distinct positions in [0, n) at random (n ≥ 2): the two choices of the power-of-two-choices policies. */
export function twoChoices(n: number, random: () => number): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}
