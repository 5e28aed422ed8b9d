#!/usr/bin/env node
// A small HTTP/2 server on the HBONE session, for running an external conformance suite against it over h2c
// and over TLS (ALPN h2). Loopback only. It answers every request once the peer finished sending: 200 and a
// short body; CONNECT gets 200 and an echo of the tunnel.
//
//   node bench/h2-conformance-server.js [--port 18080] [--tls] [--h2 nodemesh|node] [--stream-window N] [--connection-window N]
//     [--max-frame-size N]
//
// The body is longer than a few bytes so that suites checking a negative flow-control window have DATA to hold
// back. --max-frame-size 16384 suits suites that assume the protocol's default frame size.
//
// With --tls it makes a throwaway self-signed certificate with `openssl` in a temporary directory (the suite
// runs with certificate checks off). Needs `npm run build:ts` first (it loads dist/).
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const port = Number(opt('port', '18080'));
const useTls = argv.includes('--tls');
const engineName = opt('h2', 'nodemesh');
const streamWindow = Number(opt('stream-window', String(64 * 1024)));
const connectionWindow = Number(opt('connection-window', String(256 * 1024)));
const maxFrameSize = opt('max-frame-size', undefined);
const BODY = Buffer.from('served by the HBONE HTTP/2 session\n');

const dist = path.resolve(__dirname, '..', 'dist', 'src', 'proxy', 'hbone');
const { h2Engine } = require(path.join(dist, 'h2-engine.js'));
const engine = h2Engine(engineName);

function selfSigned() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'h2-conformance-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const out = { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

function onStream(stream, headers) {
  if (headers[':method'] === 'CONNECT') {
    stream.respond({ ':status': '200' });
    stream.on('data', (c) => stream.write(Buffer.from(c)));
    stream.on('end', () => stream.end());
    stream.resume();
    return;
  }
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond({ ':status': '200', 'content-type': 'text/plain' });
    stream.write(BODY);
    stream.end();
  });
  stream.resume();
}

function serve(socket) {
  socket.on('error', () => {});
  const session = engine.server(socket, { streamWindow, connectionWindow, maxConcurrentStreams: 100, ...(maxFrameSize ? { maxFrameSize: Number(maxFrameSize) } : {}) });
  session.on('error', () => {});
  session.on('stream', onStream);
}

const server = useTls ? tls.createServer({ ...selfSigned(), ALPNProtocols: ['h2'] }, serve) : net.createServer(serve);
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`HTTP/2 (${engine.name}, ${useTls ? 'TLS' : 'h2c'}) on 127.0.0.1:${port}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
