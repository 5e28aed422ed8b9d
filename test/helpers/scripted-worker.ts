// A stand-in for worker-main.js in supervisor tests: records what the main thread sends, answers calls with it,
// and crashes on request (a log level of "crash"). It keeps the fds it is sent open, as a serving worker would.

import { parentPort, workerData } from 'node:worker_threads';
import type { ToWorker } from '../../src/agent/worker-protocol';

const port = parentPort!;
const received: string[] = [];
port.on('message', (m: ToWorker) => {
  if (m.type === 'log-level' && m.level === 'crash') throw new Error('scripted crash');
  if (m.type === 'call') {
    port.postMessage({ type: 'reply', seq: m.seq, value: m.method === 'drain' ? received.length : { index: (workerData as { index: number }).index, received } });
    return;
  }
  if (m.type === 'pod-add') port.postMessage({ type: 'pod-taken', uid: m.pod.uid });
  received.push(m.type === 'pod-add' ? `pod-add ${m.pod.uid} netns=${m.share.netnsFd}` : m.type === 'xds' ? `xds ${m.typeUrl} ${m.resources.length}` : m.type);
});
port.postMessage({ type: 'ready' });
