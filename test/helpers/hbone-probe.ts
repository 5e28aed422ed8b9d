// Run inside a pod: one HBONE attempt with given (possibly bad) credentials; prints {ok, status, error} as JSON.
// Independent of the agent's client on purpose: it shows what any peer presenting these credentials gets.

import fs from 'node:fs';
import http2 from 'node:http2';
import tls from 'node:tls';

interface ProbeSpec {
  address: string;
  port: number;
  authority: string;
  rootsPem: string[];
  keyPem?: string;
  chainPem?: string[];
}

const spec = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as ProbeSpec;

function done(result: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

setTimeout(() => done({ ok: false, error: 'timeout' }), 8000).unref();
const socket = tls.connect({
  host: spec.address,
  port: spec.port,
  ALPNProtocols: ['h2'],
  minVersion: 'TLSv1.3',
  ca: spec.rootsPem,
  key: spec.keyPem,
  cert: spec.chainPem?.join('\n'),
  // the server is a pod: its identity is a SPIFFE URI, not a host name
  checkServerIdentity: () => undefined,
});
socket.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
socket.on('secureConnect', () => {
  const session = http2.connect(`https://${spec.address}:${spec.port}`, { createConnection: () => socket });
  session.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  const req = session.request({ ':method': 'CONNECT', ':authority': spec.authority });
  req.on('response', (h) => done({ ok: h[':status'] === 200, status: h[':status'] }));
  req.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  req.on('close', () => done({ ok: false, error: `stream closed (rst ${req.rstCode})` }));
});
socket.on('close', () => done({ ok: false, error: 'connection closed by the server' }));
