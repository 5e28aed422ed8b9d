// LEAST_REQUEST, Istio's default: the power of two choices (two endpoints at random, the one with fewer
// requests in flight). Nearly as good as the global minimum, without herding every client onto one endpoint.

import { twoChoices, type Picker } from './picker';

export function leastRequest(): Picker {
  return (candidates, ctx) => {
    if (candidates.length === 1) return candidates[0]!;
    const [a, b] = twoChoices(candidates.length, ctx.random);
    const ea = candidates[a]!;
    const eb = candidates[b]!;
    return ctx.state(ea).active <= ctx.state(eb).active ? ea : eb;
  };
}
