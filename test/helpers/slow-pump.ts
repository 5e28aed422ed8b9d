// Run inside a pod: one connection that sends, pauses (so a test can act meanwhile), sends again, checks the echo.

import crypto from 'node:crypto';
import net from 'node:net';

const [host, port, pauseMs] = process.argv.slice(2);
const first = crypto.randomBytes(64 * 1024);
const second = crypto.randomBytes(64 * 1024);
const chunks: Buffer[] = [];
const s = net.connect({ host: host!, port: Number(port), allowHalfOpen: true }, () => {
  s.write(first);
  process.stdout.write(JSON.stringify({ phase: 'connected' }) + '\n');
  setTimeout(() => s.end(second), Number(pauseMs));
});
s.on('data', (c: Buffer) => chunks.push(c));
s.on('error', (e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: e.message }) + '\n');
  process.exit(1);
});
s.on('end', () => {
  const ok = Buffer.concat(chunks).equals(Buffer.concat([first, second]));
  process.stdout.write(JSON.stringify({ ok, received: Buffer.concat(chunks).length }) + '\n');
  process.exit(ok ? 0 : 1);
});
