// Fuzz target http1-server: raw bytes from a client through Node's HTTP/1.1 server exactly as the agent
// configures and wraps it (H1Downstream: llhttp in strict mode, 60 KiB heads, the agent's request, upgrade,
// CONNECT and parse-error handling), over an in-memory connection; the handler behind it reads every request
// body and answers 200.
//
// Invariant:
// - no crash: nothing thrown out of the server, no uncaught exception or unhandled rejection;
// - no hang: once the client has sent its bytes and half-closed, the server finishes the connection (the
//   per-input time bound catches one that never does);
// - bounded memory: the server writes at most a bounded answer per request, and the heap kept across
//   inputs stays bounded (the engine measures it);
// - every request the handler sees has a method and a path, and no hop-by-hop field or `host` left in its
//   headers.

import { Duplex } from 'node:stream';
import { H1Downstream } from '../../../src/proxy/http/downstream-h1';
import type { Handler } from '../../../src/proxy/http/request';
import { silentLogger } from '../../../src/telemetry/logger';
import { check, type FuzzTarget } from '../target';
import { testConn } from '../../helpers/http-conn';

const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host'];
/** Answers per request are small; a connection's output over this is a server writing without bound. */
const MAX_OUTPUT = 1 << 20;

const conn = testConn({
  direction: 'inbound',
  pod: { uid: 'u', name: 'p', namespace: 'default', serviceAccount: 'p', ips: ['10.0.0.2'], labels: {}, annotations: {}, workloadName: 'p' },
  src: { ip: '10.0.0.1', port: 40000 },
  dst: { ip: '10.0.0.2', port: 8080 },
});

const handler: Handler = async (req) => {
  check(typeof req.method === 'string' && req.method.length > 0 && typeof req.path === 'string', 'a request without method or path');
  for (const h of HOP) {
    // An upgrade keeps its connection and upgrade fields: they are its point.
    if ((h === 'connection' || h === 'upgrade') && req.headers.upgrade !== undefined) continue;
    check(req.headers[h] === undefined, `${h} reached the handler`);
  }
  if (req.body !== null && !Buffer.isBuffer(req.body)) {
    for await (const chunk of req.body) void chunk;
  }
  return { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('ok\n') };
};

const server = new H1Downstream({ log: silentLogger() });

/** A connected pair of in-memory sockets: what one writes, the other reads. */
function socketPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const make = (other: () => Duplex): Duplex =>
    Object.assign(
      new Duplex({
        allowHalfOpen: true,
        read() {},
        write(chunk: Buffer, _enc, cb) {
          other().push(chunk);
          cb();
        },
        final(cb) {
          other().push(null);
          cb();
        },
      }),
      { remoteAddress: '10.0.0.1', remotePort: 40000, localAddress: '10.0.0.2', localPort: 8080, setTimeout: () => undefined, setNoDelay: () => undefined, setKeepAlive: () => undefined },
    );
  sides.push(make(() => sides[1]!), make(() => sides[0]!));
  return [sides[0]!, sides[1]!];
}

function run(data: Buffer): Promise<void> {
  const [client, serverSide] = socketPair();
  return new Promise((resolve, reject) => {
    let output = 0;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      client.destroy();
      serverSide.destroy();
      if (err) reject(err);
      else resolve();
    };
    client.on('data', (chunk: Buffer) => {
      output += chunk.length;
      if (output > MAX_OUTPUT) finish(new Error(`the server wrote over ${MAX_OUTPUT} bytes for a ${data.length}-byte input`));
    });
    // Done when the server has ended its side (or closed the connection).
    client.on('end', () => finish());
    serverSide.on('close', () => finish());
    server.serve(serverSide, { conn, handler, onClientError: () => undefined });
    client.end(data);
  });
}

export const target: FuzzTarget = {
  mode: 'async',
  maxLen: 4096,
  dict: [
    'GET / HTTP/1.1\r\n', 'POST /p HTTP/1.1\r\n', 'HTTP/1.0', 'Host: a\r\n', 'Content-Length: ', 'Transfer-Encoding: chunked\r\n',
    '\r\n\r\n', '0\r\n\r\n', 'Connection: keep-alive\r\n', 'Connection: close\r\n', 'Upgrade: websocket\r\n', 'Connection: upgrade\r\n',
    'Expect: 100-continue\r\n', 'CONNECT a:443 HTTP/1.1\r\n', 'TE: trailers\r\n', 'Trailer: x\r\n',
  ],
  run,
};
