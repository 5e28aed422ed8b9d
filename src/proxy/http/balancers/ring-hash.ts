// RING_HASH (Ketama): each endpoint owns many points on a 32-bit ring; a request goes to the first point at
// or after its hash. Adding or removing one of N endpoints moves about 1/N of the keys. Without a hash (no
// hash policy matched), requests fall back to random.

import { endpointKey, fnv1a, type Picker } from './picker';
import type { EndpointInfo } from '../../../state/services';

interface Ring {
  points: Uint32Array;
  owners: EndpointInfo[];
}

/** Fewest points per endpoint. */
const POINTS_PER_ENDPOINT = 512;

/**
 * Points per endpoint: enough for `minSize` in all, rounded up to a power of two, so the count rarely changes
 * when an endpoint comes or goes; while it does not, every existing point stays where it was and only the
 * keys the newcomer's points take move (about 1/N).
 */
function pointsPerEndpoint(n: number, minSize: number): number {
  const want = Math.max(POINTS_PER_ENDPOINT, Math.ceil(minSize / n));
  return 2 ** Math.ceil(Math.log2(want));
}

function buildRing(eps: readonly EndpointInfo[], minSize: number): Ring {
  const perEndpoint = pointsPerEndpoint(eps.length, minSize);
  const entries: [number, EndpointInfo][] = [];
  for (const ep of eps) {
    const k = endpointKey(ep);
    for (let i = 0; i < perEndpoint; i++) entries.push([fnv1a(`${k}_${i}`), ep]);
  }
  entries.sort((x, y) => x[0] - y[0]);
  return { points: Uint32Array.from(entries.map((e) => e[0])), owners: entries.map((e) => e[1]) };
}

export function ringHash(minRingSize = 1024): Picker {
  let built: { for: readonly EndpointInfo[]; ring: Ring } | null = null;
  return (candidates, ctx) => {
    if (ctx.hash === null) return candidates[Math.floor(ctx.random() * candidates.length)]!;
    if (built === null || built.for !== candidates) built = { for: candidates, ring: buildRing(candidates, minRingSize) };
    const { points, owners } = built.ring;
    // First point >= hash (binary search), wrapping around.
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < ctx.hash) lo = mid + 1;
      else hi = mid;
    }
    return owners[lo === points.length ? 0 : lo]!;
  };
}
