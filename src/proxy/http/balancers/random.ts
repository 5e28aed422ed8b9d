// RANDOM: uniformly at random, no state.

import type { Picker } from './picker';

export function randomPick(): Picker {
  return (candidates, ctx) => candidates[Math.floor(ctx.random() * candidates.length)]!;
}
