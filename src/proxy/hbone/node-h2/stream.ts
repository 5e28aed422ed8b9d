// One Node `http2` stream behind the HboneStream contract: paused until resume(), faults in 'close', never 'error'.

import { EventEmitter } from 'node:events';
import type http2 from 'node:http2';
import { ErrorCode } from '../h2/constants';
import type { Headers, HboneStream } from '../h2-engine';

/** Node's header object as the contract's: every value a string, repeated fields joined. */
export function flatHeaders(h: http2.IncomingHttpHeaders | Record<string, unknown>): Headers {
  const out: Headers = Object.create(null) as Headers;
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

export class NodeH2Stream extends EventEmitter implements HboneStream {
  headers: Headers = {};
  rstCode: number | undefined = undefined;
  error: Error | null = null;
  closed = false;

  constructor(
    readonly raw: http2.Http2Stream,
    private readonly onClosed: () => void,
  ) {
    super();
    raw.on('data', (chunk: Buffer) => this.emit('data', chunk));
    // Attaching 'data' made the stream flowing; the contract starts paused (the relay resumes it).
    raw.pause();
    raw.on('end', () => this.emit('end'));
    raw.on('drain', () => this.emit('drain'));
    raw.on('error', (err: NodeJS.ErrnoException) => {
      // A reset by the peer shows as its code in 'close' (rstCode); anything else is a session fault.
      if (err.code !== 'ERR_HTTP2_STREAM_ERROR' && this.error === null) this.error = err;
    });
    raw.on('close', () => {
      this.closed = true;
      this.rstCode = raw.rstCode ?? ErrorCode.NO_ERROR;
      this.onClosed();
      this.emit('close');
    });
    raw.on('response', (headers: http2.IncomingHttpHeaders) => {
      this.headers = flatHeaders(headers);
      this.emit('response', this.headers);
    });
  }

  get id(): number {
    return this.raw.id ?? 0;
  }

  get destroyed(): boolean {
    return this.closed || this.raw.destroyed;
  }

  get writableLength(): number {
    return this.raw.writableLength;
  }

  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    if (this.destroyed || this.raw.writableEnded) {
      if (cb) process.nextTick(cb, new Error('HTTP/2 stream is closed'));
      return false;
    }
    return this.raw.write(chunk, cb);
  }

  end(): void {
    if (!this.destroyed && !this.raw.writableEnded) this.raw.end();
  }

  respond(headers: Headers, endStream = false): void {
    const raw = this.raw as http2.ServerHttp2Stream;
    if (this.destroyed || raw.headersSent) return;
    raw.respond(headers, { endStream });
  }

  reset(code: number = ErrorCode.CANCEL): void {
    if (this.destroyed) return;
    this.raw.close(code);
  }

  pause(): void {
    this.raw.pause();
  }

  resume(): void {
    this.raw.resume();
  }
}
