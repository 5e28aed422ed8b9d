// PEAK_EWMA, Linkerd's latency-aware balancer: two endpoints at random, the one with the lower cost, where
// cost = (peak-sensitive moving average of its latency) × (its requests in flight + 1). A latency spike
// raises the average at once; it decays over `decayMs`. Endpoints never measured cost their cluster's
// default, so new ones are tried.

import type { EndpointState } from '../cluster-state';
import { twoChoices, type Picker } from './picker';

/** Latency assumed for an endpoint with no measurement yet (ms). */
export const DEFAULT_RTT_MS = 30;

/** Folds one latency observation into the endpoint's peak EWMA. */
export function observeLatency(s: EndpointState, ms: number, now: number, decayMs = 10_000): void {
  if (s.lastUpdate === 0 || ms > s.ewmaMs) {
    s.ewmaMs = ms;
  } else {
    const w = Math.exp(-Math.max(0, now - s.lastUpdate) / decayMs);
    s.ewmaMs = s.ewmaMs * w + ms * (1 - w);
  }
  s.lastUpdate = now;
}

export function peakEwma(): Picker {
  return (candidates, ctx) => {
    if (candidates.length === 1) return candidates[0]!;
    const [a, b] = twoChoices(candidates.length, ctx.random);
    const cost = (i: number): number => {
      const s = ctx.state(candidates[i]!);
      return (s.lastUpdate === 0 ? DEFAULT_RTT_MS : s.ewmaMs) * (s.active + 1);
    };
    return cost(a) <= cost(b) ? candidates[a]! : candidates[b]!;
  };
}
