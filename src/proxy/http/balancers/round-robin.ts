// ROUND_ROBIN: each endpoint in turn. The position survives candidate-list changes (it is taken modulo
// the current length), so an ejection or a config push does not restart the rotation at the first endpoint.

import type { Picker } from './picker';

export function roundRobin(): Picker {
  let next = -1;
  return (candidates, ctx) => {
    if (next < 0) next = Math.floor(ctx.random() * candidates.length);
    const ep = candidates[next % candidates.length]!;
    next = (next + 1) % 0x7fffffff;
    return ep;
  };
}
