// `nodemesh sample pump`: sends N random bytes to an echo server, half-closes, checks the echo by sha256.

import { createHash, randomFillSync } from 'node:crypto';
import net from 'node:net';

export interface PumpOptions {
  host: string;
  port: number;
  bytes: number;
  timeoutMs: number;
  chunkSize?: number;
}

export interface PumpResult {
  ok: boolean;
  target: string;
  sent: number;
  received: number;
  sha256Sent: string;
  sha256Received: string;
  ms: number;
  mbps: number;
  local?: { address?: string; port?: number };
  error?: string;
}

/** Parses HOST:PORT (IPv6 as [addr]:port). */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`"${s}" is not HOST:PORT`);
  return { host: m[1] as string, port };
}

/**
 * The whole payload goes out before our FIN; the server's FIN ends the read side. A proxy that
 * mishandles half-close shows up as a short read, a timeout or a hash mismatch.
 */
export function pump(opts: PumpOptions): Promise<PumpResult> {
  const chunkSize = opts.chunkSize ?? 64 * 1024;
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  const t0 = process.hrtime.bigint();
  let sent = 0;
  let received = 0;
  return new Promise((resolve) => {
    const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true });
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const s = sentHash.digest('hex');
      const r = recvHash.digest('hex');
      const res: PumpResult = {
        ok: !error && sent === opts.bytes && received === sent && s === r,
        target: `${opts.host}:${opts.port}`,
        sent,
        received,
        sha256Sent: s,
        sha256Received: r,
        ms: Math.round(ms * 1000) / 1000,
        mbps: ms > 0 ? Math.round(((sent + received) * 8) / (ms * 1000) * 100) / 100 : 0,
        local: { address: sock.localAddress, port: sock.localPort },
      };
      if (error) res.error = error;
      else if (!res.ok) res.error = received !== sent ? `echo was ${received} bytes, sent ${sent}` : 'echo differs from what was sent';
      sock.destroy();
      resolve(res);
    };
    const timer = setTimeout(() => finish(`timed out after ${opts.timeoutMs} ms (sent ${sent}, received ${received})`), opts.timeoutMs);
    sock.on('data', (c: Buffer) => {
      received += c.length;
      recvHash.update(c);
    });
    sock.on('end', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) => finish(`${e.code ?? 'ERROR'}: ${e.message}`));
    sock.on('connect', () => {
      const write = (): void => {
        while (sent < opts.bytes) {
          const buf = randomFillSync(Buffer.allocUnsafe(Math.min(chunkSize, opts.bytes - sent)));
          sent += buf.length;
          sentHash.update(buf);
          if (!sock.write(buf)) {
            sock.once('drain', write);
            return;
          }
        }
        sock.end();
      };
      write();
    });
  });
}
