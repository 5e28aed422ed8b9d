// Copies bytes both ways between two TCP sockets: backpressure, half-close, reset propagation, no per-chunk copies.

import net from 'node:net';
import { socketOnFd } from '../util/fd';

/** Default per-direction read buffer. Loopback reads rarely exceed 64 KiB; 32 KiB halves idle memory. */
export const DEFAULT_RELAY_BUFFER = 32 * 1024;

export interface RelayResult {
  /** Bytes read from the downstream (client) and written upstream. */
  bytesUp: number;
  /** Bytes read from the upstream and written downstream. */
  bytesDown: number;
  /** First error seen on either side, if any. */
  error: Error | null;
  /** Which side's error or reset ended the relay, if one did. */
  failedSide: 'downstream' | 'upstream' | null;
}

/**
 * Read buffers of finished relays, handed to new ones. A fresh 32 KiB Buffer per direction per connection is
 * external memory, and V8 answers external-memory churn with full mark-compacts: at 200 new connections/s
 * each agent ran one every ~1.1 s, with incremental steps up to 20 ms, which showed as the S4 latency tail.
 * Holds at most `max` buffers of the default size (2 MiB); other sizes are not pooled.
 */
class ReadBufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    private readonly size: number,
    private readonly max: number,
  ) {}

  take(size: number): Buffer {
    return (size === this.size ? this.free.pop() : undefined) ?? Buffer.allocUnsafe(size);
  }

  give(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.max) this.free.push(buf);
  }
}

/**
 * Bytes kept free before every read a Direction hands out, so a sink that frames what it sends (an HTTP/2
 * stream: 9-byte DATA headers) can put the header there and send header and payload as one Buffer.
 */
export const READ_HEADROOM = 16;

const readBuffers = new ReadBufferPool(DEFAULT_RELAY_BUFFER + READ_HEADROOM, 64);

/** Where a Direction writes: a socket, or an HTTP/2 stream (whose writes always complete asynchronously). */
export interface RelaySink {
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean;
  /** Like write(), lending the sink the READ_HEADROOM bytes before `chunk` until `cb` runs. */
  writeFramed?(chunk: Buffer, cb?: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
  readonly writableLength: number;
  readonly destroyed: boolean;
}

/**
 * One direction of a relay. Reads land in a buffer owned by this direction (Node's `onread` option, so the
 * stream machinery does not allocate a Buffer per read) and are written straight to the other end. If the
 * kernel does not take the whole chunk at once, libuv keeps pointing into our buffer, so reading pauses until
 * that write completes: the buffer is never overwritten while referenced, and a slow reader slows the writer.
 */
export class Direction {
  /** Where reads land: `whole` after READ_HEADROOM bytes. */
  readonly buffer: Buffer;
  private readonly whole: Buffer;
  bytes = 0;
  private dst: RelaySink | null = null;
  /** Whether `dst` takes chunks framed in place (writeFramed), decided once at bind(). */
  private framed = false;
  private src: net.Socket | null = null;
  private waiting = false;
  /** Bytes read before bind() (a server that speaks first, read before the relay starts): copies, delivered on bind. */
  private early: Buffer[] | null = null;

  /**
   * Reads shorter than this are copied and written without waiting for the write to complete. For an HTTP/2
   * sink, whose writes always complete later, waiting on every small request/response chunk costs a pause,
   * a resume and a round of the event loop each; copying a few KiB is cheaper. Bulk reads stay zero-copy.
   */
  copyBelow = 0;

  constructor(bufferSize: number) {
    this.whole = readBuffers.take(bufferSize + READ_HEADROOM);
    this.buffer = this.whole.subarray(READ_HEADROOM);
  }

  /**
   * Gives the buffer back for reuse, once the source socket is closed (libuv reads into it no more) and no write
   * still points into it (a write in flight at close may be referenced until it is cancelled: that buffer is
   * left to the garbage collector). The Direction must not be used afterwards.
   */
  release(): void {
    if (this.waiting || this.src === null || !this.src.destroyed) return;
    this.dst = null;
    readBuffers.give(this.whole);
  }

  /** Socket options that make `socket` read into this direction's buffer. */
  readOptions(): { buffer: Buffer; callback: (n: number, buf: Buffer) => boolean } {
    return { buffer: this.buffer, callback: this.onRead };
  }

  /** Bytes the client sent before this relay existed (read while detecting its protocol): they go first. */
  preload(chunk: Buffer): void {
    if (chunk.length === 0) return;
    (this.early ??= []).push(chunk);
    this.bytes += chunk.length;
  }

  /** Starts writing what `src` reads to `dst`. The caller resumes `src` afterwards. */
  bind(src: net.Socket, dst: RelaySink): void {
    this.src = src;
    this.dst = dst;
    this.framed = dst.writeFramed !== undefined;
    const early = this.early;
    this.early = null;
    if (early !== null) for (const chunk of early) dst.write(chunk);
  }

  private readonly onRead = (n: number, buf: Buffer): boolean => {
    const dst = this.dst;
    if (dst === null) {
      // Not relaying yet: keep a copy (the buffer is reused by the next read) and pause until bind().
      (this.early ??= []).push(Buffer.from(buf.subarray(0, n)));
      this.bytes += n;
      return false;
    }
    if (dst.destroyed) return false;
    this.bytes += n;
    if (n < this.copyBelow) {
      // The copy frees our buffer at once; backpressure comes from the sink's high-water mark instead.
      if (this.send(dst, copyWithHeadroom(buf, n, this.framed))) return true;
      this.waiting = true;
      dst.once('drain', this.onWritten);
      return false;
    }
    this.send(dst, buf.subarray(0, n), this.onWritten);
    if (dst.writableLength === 0) return true;
    this.waiting = true;
    return false;
  };

  /** Writes `chunk` (which has READ_HEADROOM bytes before it) framed in place where the sink can. */
  private send(dst: RelaySink, chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    return this.framed ? dst.writeFramed!(chunk, cb) : dst.write(chunk, cb);
  }

  private readonly onWritten = (err?: Error | null): void => {
    if (!this.waiting || err) return;
    this.waiting = false;
    const src = this.src;
    if (src !== null && !src.destroyed) src.resume();
  };
}

/** The first `n` bytes of `buf` in a Buffer of their own, after READ_HEADROOM free bytes when `headroom`. */
function copyWithHeadroom(buf: Buffer, n: number, headroom: boolean): Buffer {
  if (!headroom) return Buffer.from(buf.subarray(0, n));
  const b = Buffer.allocUnsafe(READ_HEADROOM + n);
  buf.copy(b, READ_HEADROOM, 0, n);
  return b.subarray(READ_HEADROOM);
}

export interface RelayHandlers {
  /** Called exactly once, after both sockets are closed. */
  onClose(result: RelayResult): void;
}

/**
 * Starts relaying between two connected sockets whose reads were set up with `down.readOptions()` /
 * `up.readOptions()` and created with `allowHalfOpen: true`. A FIN from one side is passed on as a FIN
 * (half-close); an error or reset on one side resets the other, so clients see upstream failures.
 */
export function startRelay(
  downstream: net.Socket,
  upstream: net.Socket,
  up: Direction,
  down: Direction,
  handlers: RelayHandlers,
): void {
  up.bind(downstream, upstream);
  down.bind(upstream, downstream);
  let open = 2;
  let error: Error | null = null;
  let failedSide: RelayResult['failedSide'] = null;

  const fail = (side: 'downstream' | 'upstream', other: net.Socket) => (err: Error) => {
    if (error === null) {
      error = err;
      failedSide = side;
    }
    if (!other.destroyed) other.resetAndDestroy();
  };
  const closed = (): void => {
    if (--open > 0) return;
    up.release();
    down.release();
    handlers.onClose({ bytesUp: up.bytes, bytesDown: down.bytes, error, failedSide });
  };

  downstream.on('error', fail('downstream', upstream));
  upstream.on('error', fail('upstream', downstream));
  // FIN from one side: finish writing what is queued, then send FIN to the other side.
  downstream.on('end', () => upstream.end());
  upstream.on('end', () => downstream.end());
  downstream.on('close', closed);
  upstream.on('close', closed);
  downstream.resume();
  upstream.resume();
}

// `handle`, `onread` and `manualStart` are accepted by net.Socket's constructor but absent from its typings.
interface SocketInternals {
  _handle: unknown;
}
type SocketCtorOptions = net.SocketConstructorOpts & {
  handle?: unknown;
  onread?: ReturnType<Direction['readOptions']>;
  manualStart?: boolean;
};

/**
 * Re-wraps a socket accepted by a `pauseOnConnect` server so its reads go into `dir`'s buffer
 * (net.Server offers no `onread` for accepted sockets). Bytes the original wrapper holds unread go to `dir`
 * first. The returned socket starts paused; the original wrapper must not be used afterwards.
 */
export function adoptAccepted(accepted: net.Socket, dir: Direction): net.Socket {
  // A socket read from before (protocol detection) and paused goes on reading into its own buffer until that is
  // full: a paused net.Socket stops its reads only once its buffer is. What it read while the connection's
  // upstream was set up would go with the old wrapper, and the client's stream would arrive with a hole. Only what
  // it holds is read: read() on an empty buffer would start reads on the handle being taken.
  while (accepted.readableLength > 0) {
    const left = accepted.read() as Buffer | null;
    if (left === null) break;
    dir.preload(left);
  }
  const internals = accepted as unknown as SocketInternals;
  const handle = internals._handle;
  internals._handle = null;
  const opts: SocketCtorOptions = { handle, allowHalfOpen: true, onread: dir.readOptions() };
  const socket = new net.Socket(opts);
  socket.pause();
  // A proxy must not add Nagle delays to what the client already chose to send.
  return socket.setNoDelay(true);
}

/**
 * An upstream socket reading into `dir`'s buffer (or, with `dir` null, a plain stream). `fd` is an unconnected socket made inside the pod netns
 * (null: a plain socket of the agent's own netns, for tests). Reading starts once `connect()` succeeds.
 */
export function newUpstream(fd: number | null, dir: Direction | null): net.Socket {
  const opts: SocketCtorOptions = { allowHalfOpen: true };
  // Without a Direction the socket reads as a normal stream (for relays that pipe, e.g. to an HBONE stream).
  if (dir !== null) opts.onread = dir.readOptions();
  // With an fd the constructor would start reading an unconnected socket (ENOTCONN): wait for connect.
  if (fd !== null) opts.manualStart = true;
  return socketOnFd(fd, opts).setNoDelay(true);
}
