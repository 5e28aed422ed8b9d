// Engine self-test: a planted hang, reached through the event loop (async mode), where libFuzzer's own alarm
// would never fire on the stuck thread. The fuzz tier fails if the watchdog does not catch and save it.

import type { FuzzTarget } from '../target';

export const target: FuzzTarget = {
  mode: 'async',
  maxLen: 16,
  async run(data) {
    await Promise.resolve();
    if (data[0] === 0x48) for (;;);
  },
};
