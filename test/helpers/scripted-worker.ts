// A stand-in for worker-main.js in supervisor tests: records what the main thread sends, answers calls with it,
// beats like a live event loop, and crashes or hangs on request (a log level of "crash" or "hang"). It keeps
// the fds it is sent open, as a serving worker would.

import { parentPort, workerData } from 'node:worker_threads';
import { HEARTBEAT_MS, type ToWorker, type WorkerData } from '../../src/agent/worker-protocol';

const port = parentPort!;
const received: string[] = [];
const beat = new Int32Array((workerData as WorkerData).heartbeat);
setInterval(() => Atomics.add(beat, 0, 1), HEARTBEAT_MS).unref();
port.on('message', (m: ToWorker) => {
  if (m.type === 'log-level' && m.level === 'crash') throw new Error('scripted crash');
  if (m.type === 'log-level' && m.level === 'hang') for (;;);
  if (m.type === 'call') {
    port.postMessage({ type: 'reply', seq: m.seq, value: m.method === 'drain' ? received.length : { index: (workerData as { index: number }).index, received } });
    return;
  }
  if (m.type === 'pod-add') port.postMessage({ type: 'pod-taken', uid: m.pod.uid });
  received.push(m.type === 'pod-add' ? `pod-add ${m.pod.uid} netns=${m.share.netnsFd}` : m.type === 'xds' ? `xds ${m.typeUrl} ${m.resources.length}` : m.type);
});
port.postMessage({ type: 'ready' });
