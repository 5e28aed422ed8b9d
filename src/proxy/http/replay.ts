// A request body kept for replay (retries, mirrors) while it streams to the first attempt: up to 64 KiB
// is kept; a larger body is never replayed (as Linkerd does), and neither is one still streaming when a
// replay is wanted (a streaming request is not retried).

import { PassThrough, type Readable } from 'node:stream';
import type { L7Request } from './request';

export const REPLAY_LIMIT = 64 * 1024;

export class Replay {
  private chunks: Buffer[] = [];
  private size = 0;
  private overflow = false;
  private ended: boolean;
  private readonly waiters: (() => void)[] = [];
  private buffered: Buffer | null = null;

  constructor(source: Readable | Buffer | null, private readonly first: PassThrough | null) {
    this.ended = source === null || Buffer.isBuffer(source);
    if (Buffer.isBuffer(source)) {
      this.buffered = source;
      this.size = source.length;
      this.overflow = source.length > REPLAY_LIMIT;
    }
    if (source !== null && !Buffer.isBuffer(source)) {
      source.on('data', (c: Buffer) => {
        if (!this.overflow) {
          this.size += c.length;
          if (this.size > REPLAY_LIMIT) {
            this.overflow = true;
            this.chunks = [];
          } else this.chunks.push(c);
        }
        if (!this.first!.write(c)) source.pause();
      });
      this.first!.on('drain', () => source.resume());
      source.on('end', () => {
        this.ended = true;
        this.first!.end();
        for (const w of this.waiters.splice(0)) w();
      });
      source.on('error', (err) => this.first!.destroy(err));
    }
  }

  /** The body can be sent again: it ended and was small enough to keep. */
  get complete(): boolean {
    return this.ended && !this.overflow;
  }

  /** The whole body, for another attempt or a mirror (only when `complete`). */
  body(): Buffer | null {
    if (this.buffered !== null) return this.buffered;
    if (this.size === 0 && this.chunks.length === 0) return null;
    this.buffered = Buffer.concat(this.chunks);
    this.chunks = [];
    return this.buffered;
  }

  /** Resolves once the body ended (true) or grew past the limit (false): for mirrors, which may wait. */
  whenComplete(): Promise<boolean> {
    if (this.ended || this.overflow) return Promise.resolve(this.complete);
    return new Promise((resolve) => this.waiters.push(() => resolve(this.complete)));
  }
}

const replays = new WeakMap<L7Request, Replay>();

/**
 * Makes `req` replayable once (later calls get the same Replay): a stream body is re-pointed at a pass-through
 * that the first attempt reads, while the Replay keeps a copy.
 */
export function replayable(req: L7Request): Replay {
  let r = replays.get(req);
  if (r) return r;
  if (req.body === null || Buffer.isBuffer(req.body)) {
    r = new Replay(req.body, null);
  } else {
    const first = new PassThrough();
    r = new Replay(req.body, first);
    req.body = first;
  }
  replays.set(req, r);
  return r;
}
