// An HBONE tunnel (one HTTP/2 CONNECT stream) as a Node Duplex, so HTTP codecs can run inside it: undici
// dials upstream through it, and Node's http/http2 servers parse what a peer agent sends through it.

import { Duplex } from 'node:stream';
import { ErrorCode } from '../hbone/h2/constants';
import type { HboneStream } from '../hbone/h2-engine';

export interface TunnelAddresses {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/**
 * Reads follow the stream's flow control: when the consumer stops reading (push returns false) the stream is
 * paused, so its window stops being credited and the peer stops sending. Writes complete when the session
 * took the bytes. A reset stream destroys the socket with an error; destroying the socket resets the stream.
 */
export class TunnelSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily: string;
  /** HTTP codecs look for these on sockets; a tunnel has nothing to tune. */
  readonly encrypted = false;

  constructor(
    readonly stream: HboneStream,
    addrs: TunnelAddresses,
  ) {
    super({ allowHalfOpen: true });
    this.remoteAddress = addrs.remoteAddress;
    this.remotePort = addrs.remotePort;
    this.localAddress = addrs.localAddress;
    this.localPort = addrs.localPort;
    this.remoteFamily = addrs.remoteAddress.includes(':') ? 'IPv6' : 'IPv4';
    stream.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.on('end', () => this.push(null));
    stream.on('close', () => {
      if (this.destroyed) return;
      if (stream.rstCode !== undefined && stream.rstCode !== ErrorCode.NO_ERROR) {
        const err = stream.error ?? Object.assign(new Error(`HBONE tunnel reset (HTTP/2 error code ${stream.rstCode})`), { code: 'ECONNRESET' });
        this.destroy(err);
      } else if (!this.readableEnded) {
        // Closed cleanly both ways: let the reader see the end, then go.
        this.push(null);
        this.destroy();
      } else {
        this.destroy();
      }
    });
  }

  override _read(): void {
    this.stream.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.stream.write(chunk, cb);
  }

  /** Corked writes (an HTTP head and its body) leave as one DATA frame, one TLS record. */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.stream.write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.stream.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.stream.closed) this.stream.reset(err ? ErrorCode.CONNECT_ERROR : ErrorCode.CANCEL);
    cb(err);
  }

  // What Node's http server and undici may call on a net.Socket; meaningless for a tunnel.
  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }
}
