#!/usr/bin/env node
// The benchmark's upstream: a minimal HTTP/1.1 keep-alive server answering every request with a
// fixed 1 KiB body. Raw `net` and a precomputed response, so the server costs the same for every
// contender and as little as possible of the core it shares with the load generator.
//
//   node bench/server.js --port 8080 [--body 1024] [--fail-percent 20 [--fail-seed 1]] [--delay-ms 30]
//
// A bad instance for S6: `--fail-percent P` answers 500 to P % of requests, drawn from a PRNG seeded with
// --fail-seed, so the n-th request this server sees fails or not identically in every run (unlike "every
// k-th", failures also come in runs, as a real failing instance's do, which is what outlier detection's
// consecutive-error count needs to see); `--delay-ms D` holds every response D ms (a timer per request,
// so requests on different connections are delayed in parallel, and responses on one connection keep
// their order).
//
// It parses just enough HTTP/1.1: request heads end at CRLFCRLF, bodies (if any) by Content-Length,
// pipelined requests are answered in order, `Connection: close` is honoured by closing after the
// response (so TIME_WAIT lands on the server side in the new-connection-per-request scenario).
'use strict';

const net = require('node:net');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const port = Number(arg('port', '8080'));
const bodySize = Number(arg('body', '1024'));
const failPercent = Number(arg('fail-percent', '0'));
const delayMs = Number(arg('delay-ms', '0'));
let seed = Number(arg('fail-seed', '1')) >>> 0;
for (const [name, v, max] of [['fail-percent', failPercent, 100], ['delay-ms', delayMs, 60_000]]) {
  if (!Number.isFinite(v) || v < 0 || v > max) {
    console.error(`bench server: --${name} takes a number from 0 to ${max}, not "${arg(name)}"`);
    process.exit(2);
  }
}
/** mulberry32: a small deterministic PRNG, uniform in [0, 1). */
function nextRandom() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const fails = () => failPercent > 0 && nextRandom() * 100 < failPercent;
const body = Buffer.alloc(bodySize, 'x');
const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bodySize}\r\n`;
const RESPONSE = Buffer.concat([Buffer.from(head + 'Connection: keep-alive\r\n\r\n'), body]);
const RESPONSE_CLOSE = Buffer.concat([Buffer.from(head + 'Connection: close\r\n\r\n'), body]);
const errHead = 'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n';
const ERROR = Buffer.from(errHead + 'Connection: keep-alive\r\n\r\nfailed');
const ERROR_CLOSE = Buffer.from(errHead + 'Connection: close\r\n\r\nfailed');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Content-Length and Connection: close of one request head (lower-cased search, heads are small). */
function parseHead(headBuf) {
  const s = headBuf.toString('latin1').toLowerCase();
  let length = 0;
  const cl = s.indexOf('\r\ncontent-length:');
  if (cl >= 0) length = parseInt(s.slice(cl + 17, s.indexOf('\r\n', cl + 2)), 10) || 0;
  const close = /\r\nconnection:\s*close/.test(s);
  return { length, close };
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let pending = null; // unconsumed bytes of a partial request
  let skip = 0; // request body bytes still to discard
  sock.on('data', (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    const out = [];
    let close = false;
    let off = 0;
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length - off);
        skip -= n;
        off += n;
        if (skip > 0) break;
      }
      const end = buf.indexOf(CRLFCRLF, off);
      if (end < 0) break;
      const h = parseHead(buf.subarray(off, end + 2));
      off = end + 4;
      skip = h.length;
      const failed = fails();
      if (h.close) {
        out.push(failed ? ERROR_CLOSE : RESPONSE_CLOSE);
        close = true;
        break;
      }
      out.push(failed ? ERROR : RESPONSE);
    }
    if (!close && off < buf.length) pending = Buffer.from(buf.subarray(off));
    if (out.length === 0) return;
    const reply = () => {
      if (sock.destroyed) return;
      if (out.length === 1) sock.write(out[0]);
      else sock.write(Buffer.concat(out));
      if (close) sock.end();
    };
    // Timers of one duration fire in the order they were set: responses on a connection stay in order.
    if (delayMs > 0) setTimeout(reply, delayMs);
    else reply();
  });
  sock.on('error', () => sock.destroy());
});
server.on('error', (e) => {
  console.error(`bench server: ${e.message}`);
  process.exit(1);
});
server.listen(port, '0.0.0.0', () => console.error(`bench server on :${port}, ${bodySize} B bodies${failPercent ? `, ${failPercent} % answered 500` : ''}${delayMs ? `, every response held ${delayMs} ms` : ''}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
