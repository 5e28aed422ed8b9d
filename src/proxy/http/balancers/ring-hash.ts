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
/** Most points in one ring (Envoy's default maximum_ring_size): memory stays bounded for large clusters. */
const MAX_RING_SIZE = 8 * 1024 * 1024;

/**
 * Points per endpoint: `minSize` rounded up to a power of two, whatever the endpoint count, so the ring
 * holds at least `minSize` points and an endpoint coming or going changes no other endpoint's points: only
 * the keys the newcomer's points take move (about 1/N). Dividing `minSize` by the count instead would halve
 * every endpoint's points when the count crosses a power of two, moving keys between endpoints that stay.
 * Only past MAX_RING_SIZE does the count shrink with more endpoints.
 */
function pointsPerEndpoint(n: number, minSize: number): number {
  const want = 2 ** Math.ceil(Math.log2(Math.max(POINTS_PER_ENDPOINT, minSize)));
  return Math.max(1, Math.min(want, 2 ** Math.floor(Math.log2(MAX_RING_SIZE / n))));
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
