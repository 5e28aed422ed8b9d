// MAGLEV (Google's Maglev paper): a lookup table of a prime size filled by each endpoint's permutation in
// turn; a request goes to table[hash % size]. Faster lookups than a ring and a near-even share per
// endpoint; one endpoint added or removed moves a little more than 1/N of the keys.

import { endpointKey, fnv1a, type Picker } from './picker';
import type { EndpointInfo } from '../../../state/services';

/** Envoy's default table size (prime). */
export const DEFAULT_TABLE_SIZE = 65537;

function buildTable(eps: readonly EndpointInfo[], m: number): Int32Array {
  const n = eps.length;
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const next = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const k = endpointKey(eps[i]!);
    offset[i] = fnv1a(k, 0x9747b28c) % m;
    skip[i] = (fnv1a(k, 0x5bd1e995) % (m - 1)) + 1;
  }
  const table = new Int32Array(m).fill(-1);
  let filled = 0;
  while (filled < m) {
    for (let i = 0; i < n && filled < m; i++) {
      let c = (offset[i]! + next[i]! * skip[i]!) % m;
      while (table[c] !== -1) {
        next[i]!++;
        c = (offset[i]! + next[i]! * skip[i]!) % m;
      }
      table[c] = i;
      next[i]!++;
      filled++;
    }
  }
  return table;
}

export function maglev(tableSize = DEFAULT_TABLE_SIZE): Picker {
  let built: { for: readonly EndpointInfo[]; table: Int32Array } | null = null;
  return (candidates, ctx) => {
    if (ctx.hash === null) return candidates[Math.floor(ctx.random() * candidates.length)]!;
    if (built === null || built.for !== candidates) built = { for: candidates, table: buildTable(candidates, tableSize) };
    return candidates[built.table[ctx.hash % tableSize]!]!;
  };
}
