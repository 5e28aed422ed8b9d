// Engine self-test: a planted bug behind a magic word. Random bytes would need about 2^48 tries to start with
// it; coverage plus the compare hook (the literal reaches libFuzzer's table of recent compares) find it in
// seconds. The fuzz tier fails if this target is not found out.

import type { FuzzTarget } from '../target';

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 64,
  run(data) {
    if (data.length >= 6 && data.toString('latin1', 0, 6) === 'nm-bug') throw new Error('the planted bug');
  },
};
