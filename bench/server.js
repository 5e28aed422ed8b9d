#!/usr/bin/env node
// The benchmark's upstream: a minimal HTTP/1.1 keep-alive server answering every request with a
// fixed 1 KiB body. Raw `net` and a precomputed response, so the server costs the same for every
// contender and as little as possible of the core it shares with the load generator.
//
//   node bench/server.js --port 8080 [--body 1024]
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
const body = Buffer.alloc(bodySize, 'x');
const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bodySize}\r\n`;
const RESPONSE = Buffer.concat([Buffer.from(head + 'Connection: keep-alive\r\n\r\n'), body]);
const RESPONSE_CLOSE = Buffer.concat([Buffer.from(head + 'Connection: close\r\n\r\n'), body]);
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
      if (h.close) {
        out.push(RESPONSE_CLOSE);
        close = true;
        break;
      }
      out.push(RESPONSE);
    }
    if (!close && off < buf.length) pending = Buffer.from(buf.subarray(off));
    if (out.length === 1) sock.write(out[0]);
    else if (out.length > 1) sock.write(Buffer.concat(out));
    if (close) sock.end();
  });
  sock.on('error', () => sock.destroy());
});
server.on('error', (e) => {
  console.error(`bench server: ${e.message}`);
  process.exit(1);
});
server.listen(port, '0.0.0.0', () => console.error(`bench server on :${port}, ${bodySize} B bodies`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
