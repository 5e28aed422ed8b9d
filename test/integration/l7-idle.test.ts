// The downstream idle timeout (`--http-idle-timeout`): a client's HTTP connection that carries no request for
// that long is closed by the agent, HTTP/1.1 keep-alive and HTTP/2 alike; one that keeps sending is not.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { appServer, h2Status, pod, serveOneService, startPair, type L7Pair } from '../helpers/l7-pair';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.0.2`, 'client', { app: 'client' });
const WEB = pod('web-1', `127.${base}.1.2`, 'web', { app: 'web' });
const VIP = '10.96.0.11';
const HOST = 'web.default.svc.cluster.local';
const IDLE_MS = 1000;

/** Resolves with how the connection ended, or 'open' if it was still open after `ms`. */
function endOf(s: net.Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('open'), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve('closed');
    });
  });
}

describe(`L7 downstream idle timeout (${IDLE_MS} ms on the client's agent)`, () => {
  let pair: L7Pair;
  let app: http.Server;

  before(async () => {
    app = await appServer(WEB.ip, 8080, 'web-1');
    pair = await startPair(CLIENT, [WEB], { extra: (node) => (node === 'a' ? { httpIdleTimeoutMs: IDLE_MS } : {}) });
    serveOneService(pair, VIP, HOST, [WEB]);
  });

  after(async () => {
    await pair?.close();
    app?.close();
  });

  /** One request on `s` (HTTP/1.1 keep-alive); resolves with the status line. */
  const request = (s: net.Socket): Promise<string> =>
    new Promise((resolve, reject) => {
      let got = '';
      const timer = setTimeout(() => reject(new Error(`no whole answer within 5 s: ${JSON.stringify(got)}`)), 5000);
      const onData = (d: Buffer): void => {
        got += d.toString('latin1');
        const head = got.indexOf('\r\n\r\n');
        if (head < 0) return;
        const len = /content-length: (\d+)/i.exec(got.slice(0, head));
        const whole = len ? got.length >= head + 4 + Number(len[1]) : got.endsWith('\r\n0\r\n\r\n');
        if (whole) {
          clearTimeout(timer);
          s.off('data', onData);
          resolve(got.slice(0, got.indexOf('\r\n')));
        }
      };
      s.on('data', onData);
      s.once('error', reject);
      s.write(`GET /idle HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`);
    });

  it('closes an idle HTTP/1.1 keep-alive connection, and keeps one that keeps sending', async () => {
    const idle = net.connect(pair.clientPort, '127.0.0.1');
    const busy = net.connect(pair.clientPort, '127.0.0.1');
    await Promise.all([new Promise((r) => idle.once('connect', r)), new Promise((r) => busy.once('connect', r))]);
    try {
      assert.equal(await request(idle), 'HTTP/1.1 200 OK');
      const idleEnd = endOf(idle, 10 * IDLE_MS);
      const busyEnd = endOf(busy, 3 * IDLE_MS);
      // A request every half timeout, for three timeouts: never idle long enough.
      for (let i = 0; i < 6; i++) {
        assert.equal(await request(busy), 'HTTP/1.1 200 OK');
        await new Promise((r) => setTimeout(r, IDLE_MS / 2));
      }
      assert.equal(await idleEnd, 'closed', 'the idle connection was closed by the agent');
      assert.equal(await busyEnd, 'open', 'the busy connection stayed open');
      assert.equal(await request(busy), 'HTTP/1.1 200 OK');
    } finally {
      idle.destroy();
      busy.destroy();
    }
  });

  it('closes an idle HTTP/2 connection (no stream open)', async () => {
    const session = http2.connect(`http://127.0.0.1:${pair.clientPort}`);
    session.on('error', () => undefined);
    try {
      const status = await h2Status(session, '/idle-h2', HOST);
      assert.equal(status, 200);
      const ended = await new Promise<'closed' | 'open'>((resolve) => {
        const t = setTimeout(() => resolve('open'), 10 * IDLE_MS);
        session.once('close', () => {
          clearTimeout(t);
          resolve('closed');
        });
      });
      assert.equal(ended, 'closed', 'the idle HTTP/2 connection was closed by the agent');
    } finally {
      session.destroy();
    }
  });
});
