// Small TCP fixtures shared by tests: an echo server and a byte pump that verifies what comes back.

import crypto from 'node:crypto';
import net from 'node:net';

export async function listen(server: net.Server, port = 0, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** An echo server that echoes until the peer's FIN, then ends (half-close aware). */
export function echoServer(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
}

export interface PumpResult {
  sent: number;
  received: number;
  intact: boolean;
}

/** Sends `bytes` random bytes, half-closes, reads the echo back and checks it is byte-exact. */
export function pump(port: number, bytes: number, host = '127.0.0.1'): Promise<PumpResult> {
  const data = crypto.randomBytes(bytes);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host, allowHalfOpen: true }, () => {
      s.end(data);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => {
      const got = Buffer.concat(chunks);
      resolve({ sent: bytes, received: got.length, intact: got.equals(data) });
      s.destroy();
    });
  });
}
