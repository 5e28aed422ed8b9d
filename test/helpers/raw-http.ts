// Raw HTTP/1.1 clients for hostile-input tests: huge bodies streamed without holding them, slow heads and
// bodies, idle connections; over TCP or a unix socket.

import net from 'node:net';

export type HttpTarget = { socketPath: string } | { host: string; port: number };

export interface RawAnswer {
  /** Status of the first response line, or null when the connection ended without one. */
  status: number | null;
  /** The response as received (head and body). */
  text: string;
  /** How the connection ended: closed by the server, reset, or still open at our deadline. */
  end: 'closed' | 'reset' | 'deadline';
  /** Bytes of the request body written before the server answered or closed. */
  bodySent: number;
}

export function connect(target: HttpTarget): net.Socket {
  return 'socketPath' in target ? net.connect(target.socketPath) : net.connect(target.port, target.host);
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/**
 * Sends `head`, then `bodyBytes` of body (as chunked encoding when `chunked`), in 64 KiB writes that wait for
 * the socket to drain, so the sender never holds more than a chunk; stops writing once an answer arrives.
 * `pauseAfter`: write that many body bytes, then nothing more (a slow body). Resolves when the server closes
 * the connection or after `deadlineMs`.
 */
export function rawRequest(target: HttpTarget, head: string, opts: { bodyBytes?: number; chunked?: boolean; pauseAfter?: number; deadlineMs: number }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(target);
    let text = '';
    let bodySent = 0;
    let answered = false;
    let done = false;
    const finish = (end: RawAnswer['end']): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, end, bodySent });
    };
    const timer = setTimeout(() => finish('deadline'), opts.deadlineMs);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      answered = true;
    });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'closed'));
    socket.on('close', () => finish('closed'));
    const total = opts.bodyBytes ?? 0;
    const limit = opts.pauseAfter ?? total;
    const pump = (): void => {
      while (!answered && !done && bodySent < limit) {
        const n = Math.min(CHUNK.length, limit - bodySent);
        const piece = n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n);
        bodySent += n;
        const ok = opts.chunked ? socket.write(`${n.toString(16)}\r\n`) && socket.write(piece) && socket.write('\r\n') : socket.write(piece);
        if (!ok) {
          socket.once('drain', pump);
          return;
        }
      }
      if (opts.chunked && bodySent >= total && !answered && !done) socket.write('0\r\n\r\n');
    };
    socket.once('connect', () => {
      socket.write(head);
      pump();
    });
  });
}

/**
 * Opens `n` connections and waits until each is connected (or already refused); the caller closes them. They
 * read (and drop) what arrives, so a close by the server shows as `destroyed`.
 */
export async function openIdle(target: HttpTarget, n: number): Promise<net.Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = connect(target);
          s.on('error', () => undefined);
          s.resume();
          s.once('connect', () => resolve(s));
          s.once('close', () => resolve(s));
        }),
    ),
  );
}
