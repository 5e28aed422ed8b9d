// The real data-plane worker (worker-main.js) with faults on request, for tests of the supervisor against a
// worker that serves real pods: a log level of "crash" throws from its event loop, "hang" spins it forever.

import { parentPort } from 'node:worker_threads';
import '../../src/agent/worker-main';
import type { ToWorker } from '../../src/agent/worker-protocol';

parentPort!.on('message', (m: ToWorker) => {
  if (m.type !== 'log-level') return;
  if (m.level === 'crash') setImmediate(() => {
    throw new Error('injected crash');
  });
  if (m.level === 'hang') setImmediate(() => {
    for (;;);
  });
});
