// Run inside a pod: sends a recognisable marker payload through one connection, checks the echo, prints JSON.

import net from 'node:net';

const [host, port, marker, repeat] = process.argv.slice(2);
const payload = Buffer.from(marker!.repeat(Number(repeat ?? '64')));
const chunks: Buffer[] = [];
const s = net.connect({ host: host!, port: Number(port), allowHalfOpen: true }, () => s.end(payload));
s.on('data', (c: Buffer) => chunks.push(c));
s.on('error', (e: NodeJS.ErrnoException) => {
  process.stdout.write(JSON.stringify({ ok: false, error: e.code ?? e.message }) + '\n');
  process.exit(1);
});
s.on('end', () => {
  const got = Buffer.concat(chunks);
  const ok = got.equals(payload);
  process.stdout.write(JSON.stringify({ ok, sent: payload.length, received: got.length }) + '\n');
  process.exit(ok ? 0 : 1);
});
