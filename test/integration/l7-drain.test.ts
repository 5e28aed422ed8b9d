// A drain (SIGTERM, or an upgrade's handover) and the L7 path: a client connection the agent accepted just
// before the drain, whose request was still on its way, is served, and the drain waits for it. Before, such a
// connection was in no list until its first bytes were read: a drain that saw nothing open ended the agent
// under the request, and the client saw its connection reset (the upgrade e2e caught one in CI). Now that such
// a connection counts, one that never sends is closed a few seconds into the drain rather than holding it.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { DRAIN_FIRST_BYTES_MS } from '../../src/proxy/http/http-proxy';
import { appServer, h2Status, pod, serveOneService, startPair, type L7Pair } from '../helpers/l7-pair';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.0.2`, 'client', { app: 'client' });
const WEB = pod('web-1', `127.${base}.1.2`, 'web', { app: 'web' });
const VIP = '10.96.0.12';
const HOST = 'web.default.svc.cluster.local';

async function startConfigured(): Promise<L7Pair> {
  const pair = await startPair(CLIENT, [WEB]);
  serveOneService(pair, VIP, HOST, [WEB]);
  return pair;
}

/** A connection to the client pod's 15001 that the agent has accepted (and that has sent nothing yet). */
async function acceptedConnection(pair: L7Pair): Promise<net.Socket> {
  const s = net.connect(pair.clientPort, '127.0.0.1');
  await new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  // the agent's accept runs in this process's event loop: give it a turn or two
  await new Promise((r) => setTimeout(r, 100));
  return s;
}

/** Whether `p` settled within `ms`. */
function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

describe('L7 drain: a connection accepted before the drain and read after it', () => {
  let pair: L7Pair | undefined;
  let app: http.Server | undefined;

  afterEach(async () => {
    await pair?.close();
    app?.close();
    pair = undefined;
    app = undefined;
  });

  it('HTTP/1.1: the drain waits for it; its request is answered with Connection: close', async () => {
    app = await appServer(WEB.ip, 8080, 'web-1');
    pair = await startConfigured();
    const s = await acceptedConnection(pair);
    try {
      const drained = pair.a.drain(10_000);
      assert.equal(await settledWithin(drained, 300), false, 'the drain waits for the accepted connection');
      const answer = new Promise<string>((resolve) => {
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        s.once('close', () => resolve(got));
      });
      s.write(`GET /late HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`);
      const got = await answer;
      assert.match(got, /^HTTP\/1\.1 200 OK\r\n/, got.slice(0, 200));
      assert.match(got, /\r\nconnection: close\r\n/i, 'the answer tells the client the connection ends');
      assert.match(got, /"pod":"web-1"/);
      assert.equal(await drained, 0, 'nothing was left when the drain ended');
    } finally {
      s.destroy();
    }
  });

  it(`one that sends nothing is closed ${DRAIN_FIRST_BYTES_MS} ms into the drain, which then ends`, async () => {
    pair = await startConfigured();
    const s = await acceptedConnection(pair);
    try {
      const closed = new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())));
      s.on('error', () => undefined);
      const began = Date.now();
      const drained = pair.a.drain(60_000);
      assert.equal(await settledWithin(drained, DRAIN_FIRST_BYTES_MS - 1000), false, 'the drain waits for it first');
      assert.equal(await settledWithin(closed, 3000), true, 'the silent connection was closed');
      assert.ok((await closed) - began >= DRAIN_FIRST_BYTES_MS - 50, 'not before its time');
      assert.equal(await settledWithin(drained, 2000), true, 'the drain ended with it');
      assert.equal(await drained, 0);
    } finally {
      s.destroy();
    }
  });

  it('HTTP/2: its first stream is served, then GOAWAY; the drain ends when the connection does', async () => {
    app = await appServer(WEB.ip, 8080, 'web-1');
    pair = await startConfigured();
    const s = await acceptedConnection(pair);
    let session: http2.ClientHttp2Session | undefined;
    try {
      const drained = pair.a.drain(10_000);
      assert.equal(await settledWithin(drained, 300), false, 'the drain waits for the accepted connection');
      const h2 = http2.connect(`http://${HOST}`, { createConnection: () => s });
      session = h2;
      h2.on('error', () => undefined);
      const goaway = new Promise<void>((resolve) => h2.once('goaway', () => resolve()));
      const status = await h2Status(h2, '/late-h2', HOST);
      assert.equal(status, 200);
      assert.equal(await settledWithin(goaway, 2000), true, 'the connection was told to go away');
      assert.equal(await settledWithin(drained, 5000), true, 'the drain ended with the connection');
      assert.equal(await drained, 0);
    } finally {
      session?.destroy();
      s.destroy();
    }
  });
});
