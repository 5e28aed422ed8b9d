// Unit (native addon): a thread's FdLedger closes, at the thread's teardown, exactly the raw fds it still
// holds: not those released to a handle, and not a number that was closed behind its back and reused.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { loadNative } from '../../src/datapath/native';
import { isFdOpen } from '../helpers/fds';


// Runs in a worker: adopts three copies of file A, releases one, closes one behind the ledger's back and puts
// a copy of file B on its number, then spins until terminated (no JavaScript runs at teardown: only the
// destructor acts).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const native = require(workerData.native).loadNative();
const ledger = new native.FdLedger();
const held = native.dupFd(workerData.a), released = native.dupFd(workerData.a), stale = native.dupFd(workerData.a);
for (const fd of [held, released, stale]) ledger.adopt(fd);
ledger.release(released);
native.closeFd(stale);
const reused = native.dupFd(workerData.b); // the lowest free number: usually the one just closed
parentPort.postMessage({ held, released, reused: reused === stale ? reused : null, size: ledger.size, other: reused === stale ? null : reused });
setTimeout(() => { for (;;); }, 20);
`;

test('terminating a thread closes what its ledger holds, nothing else', async () => {
  const native = require.resolve('../../src/datapath/native');
  loadNative(); // fails here, with the build hint, if the addon is missing
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-ledger-'));
  const a = fs.openSync(path.join(dir, 'a'), 'w');
  const b = fs.openSync(path.join(dir, 'b'), 'w');
  const w = new Worker(WORKER, { eval: true, workerData: { native, a, b } });
  const fds = await new Promise<{ held: number; released: number; reused: number | null; other: number | null; size: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, 50));
  await w.terminate();
  try {
    assert.equal(fds.size, 2, 'released fds leave the ledger');
    assert.equal(isFdOpen(fds.held), false, 'a held fd is closed by the teardown');
    assert.equal(isFdOpen(fds.released), true, 'a released fd belongs to whoever took it');
    if (fds.reused !== null) assert.equal(isFdOpen(fds.reused), true, 'a number closed behind the ledger and reused is not closed');
  } finally {
    for (const fd of [fds.released, fds.reused, fds.other, a, b]) if (fd !== null && isFdOpen(fd)) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
