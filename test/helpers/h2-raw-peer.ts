// A hand-driven HTTP/2 peer for tests: writes whatever bytes a test wants, parses the frames that come back.

import net from 'node:net';
import { CLIENT_PREFACE, Flag, FrameType, frame } from '../../src/proxy/hbone/h2/constants';
import { HpackEncoder } from '../../src/proxy/hbone/h2/hpack';
import { waitFor } from './wait';

export interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A hand-driven HTTP/2 client: writes whatever bytes a test wants, parses what comes back. */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private readonly socket: net.Socket;
  readonly encoder = new HpackEncoder();

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => {});
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const length = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + length) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5), payload: this.buf.subarray(9, 9 + length) });
        this.buf = this.buf.subarray(9 + length);
      }
    });
  }

  write(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /** The preface and an empty SETTINGS: a well-behaved start. */
  start(): void {
    this.write(CLIENT_PREFACE, frame(FrameType.SETTINGS, 0, 0));
  }

  /** Acknowledges the server's SETTINGS (a peer that never does is cut off after the SETTINGS timeout). */
  ack(): void {
    this.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
  }

  /** The server's first SETTINGS, as identifier → value. */
  async serverSettings(): Promise<Map<number, number>> {
    const f = await this.next('server SETTINGS', (x) => x.type === FrameType.SETTINGS && (x.flags & Flag.ACK) === 0);
    const out = new Map<number, number>();
    for (let at = 0; at + 6 <= f.payload.length; at += 6) out.set(f.payload.readUInt16BE(at), f.payload.readUInt32BE(at + 2));
    return out;
  }

  headers(stream: number, fields: Array<[string, string]>, flags: number = Flag.END_HEADERS): Buffer {
    return frame(FrameType.HEADERS, flags, stream, this.encoder.encode(fields));
  }

  async next(what: string, match: (f: RawFrame) => boolean): Promise<RawFrame> {
    let found: RawFrame | undefined;
    await waitFor(what, async () => (found = this.frames.find(match)) !== undefined, 3_000);
    return found!;
  }

  async goaway(): Promise<{ code: number; debug: string }> {
    const f = await this.next('GOAWAY', (x) => x.type === FrameType.GOAWAY);
    await waitFor('connection closed after GOAWAY', async () => this.closed, 3_000);
    return { code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  async reset(stream: number): Promise<number> {
    const f = await this.next(`RST_STREAM on ${stream}`, (x) => x.type === FrameType.RST_STREAM && x.stream === stream);
    return f.payload.readUInt32BE(0);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export const CONNECT: Array<[string, string]> = [
  [':method', 'CONNECT'],
  [':authority', '127.0.0.1:9'],
];

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}
