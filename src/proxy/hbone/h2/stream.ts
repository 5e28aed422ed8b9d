// One HTTP/2 stream of an H2Session: a CONNECT tunnel's bytes both ways, with flow control and half-close.

import { EventEmitter } from 'node:events';
import { Closure, type ClosureKind } from './closed-streams';
import { ErrorCode } from './constants';

export type Headers = Record<string, string>;
type WriteCallback = (err?: Error | null) => void;

/** Held DATA below this size is copied into shared Buffers of COALESCE_SIZE instead of kept as views. */
const SMALL_CHUNK = 4096;
const COALESCE_SIZE = 64 * 1024;

/** What a stream asks of its session. Implemented by H2Session; nothing else calls these. */
export interface StreamOwner {
  /** Sends what flow control allows of the stream's queue (and END_STREAM once it is empty). */
  flush(stream: H2Stream): void;
  /** The consumer took `n` received bytes: credit the stream's window (the connection's is credited on receipt). */
  consumed(stream: H2Stream, n: number): void;
  sendHeaders(stream: H2Stream, headers: Headers, endStream: boolean): void;
  sendReset(stream: H2Stream, code: number): void;
  /** The stream is done both ways (or reset): forget it. */
  forget(stream: H2Stream): void;
  /** Bytes the stream holds for its paused reader went up (or, negative, down). */
  held(n: number): void;
  /** Bytes the session's socket holds but has not written yet; its need for a drain. */
  readonly socketPending: number;
  readonly socketNeedsDrain: boolean;
  /** Whether DATA arrives as views of a read buffer the session reuses (see borrowed-reads.ts). */
  readonly borrowedReads: boolean;
  /** The last borrowed chunk is still referenced: the session must read into a fresh buffer from now on. */
  keepRead(): void;
}

interface Pending {
  chunk: Buffer;
  cb: WriteCallback | undefined;
  /** The FRAME_HEADER_LENGTH bytes before `chunk` are ours until `cb` runs (see writeFramed). */
  headroom: boolean;
}

/**
 * Events: 'response' (client: the final response headers), 'data' (Buffer), 'end' (the peer's END_STREAM,
 * after its data), 'drain' (a write that returned false may continue), 'close' (no more events; `rstCode` is 0
 * for a stream that ended both ways, else the reset code, and `error` says why when the session failed under
 * it). A stream never emits 'error': faults show in 'close', so an unwatched stream cannot crash the agent.
 * Reading starts paused (data is held, within the window we advertised) until `resume()`.
 */
export class H2Stream extends EventEmitter {
  /** Request headers (server side) or response headers (client side, once 'response' fired). */
  headers: Headers = {};
  rstCode: number | undefined = undefined;
  /** Set when the session failed or the peer broke the protocol. */
  error: Error | null = null;
  closed = false;

  // Send side. `sendWindow` is the peer's credit for this stream (may go negative after a SETTINGS change).
  sendWindow: number;
  /** Bytes queued here waiting for flow-control credit. */
  queuedBytes = 0;
  readonly queue: Pending[] = [];
  /** Offset into queue[0].chunk already sent. */
  queueOffset = 0;
  endQueued = false;
  sentEnd = false;
  needDrain = false;

  // Receive side. `recvWindow` is what the peer may still send; `unacked` is consumed but not yet credited.
  recvWindow: number;
  unacked = 0;
  remoteEnded = false;
  private paused = true;
  private inbox: Buffer[] = [];
  /** Room left at the end of the last inbox Buffer, when that Buffer is our own coalescing copy. */
  private inboxRoom = 0;
  private endDelivered = false;
  private deliverScheduled = false;
  /** The consumer copes with borrowed chunks (calls keep() when it holds one past the 'data' event). */
  private takesBorrowed = false;
  private lastBorrowed = false;
  /** Client side: true once final response headers arrived. */
  responded = false;
  /** Client side: the request's :method (a 2xx answer to CONNECT has no content length to check). */
  method = '';
  /** How the stream closed, for the session's memory of closed streams (RFC 9113 §5.1). */
  closure: ClosureKind = Closure.ENDED;
  /** The peer's declared content-length (-1: none, or not checked) and the DATA payload received against it. */
  expectedLength = -1;
  receivedLength = 0;
  /** Bytes in `inbox`, reported to the session's memory budget. */
  private inboxBytes = 0;

  constructor(
    readonly id: number,
    private readonly owner: StreamOwner,
    sendWindow: number,
    recvWindow: number,
  ) {
    super();
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  /** What is written but not yet handed to the kernel: this stream's queue and the shared socket's buffer. */
  get writableLength(): number {
    return this.queuedBytes + this.owner.socketPending;
  }

  /**
   * Queues `chunk` as DATA. The callback runs once the chunk left our hands (written to the socket), or with an
   * error if the stream closed first. Returns false when the caller should wait for 'drain'.
   */
  write(chunk: Buffer, cb?: WriteCallback): boolean {
    return this.queueWrite(chunk, cb, false);
  }

  /**
   * Like write(), for a chunk whose ArrayBuffer holds FRAME_HEADER_LENGTH bytes right before it that the caller
   * lends us until `cb` runs. When the chunk goes out as one frame, its header is written there and the frame
   * leaves as one Buffer: TLS sockets copy every multi-buffer write into one record, so header and payload as
   * two Buffers would copy the payload once more.
   */
  writeFramed(chunk: Buffer, cb?: WriteCallback): boolean {
    return this.queueWrite(chunk, cb, true);
  }

  private queueWrite(chunk: Buffer, cb: WriteCallback | undefined, headroom: boolean): boolean {
    if (this.closed || this.endQueued) {
      const err = new Error(this.closed ? 'HTTP/2 stream is closed' : 'write after end on an HTTP/2 stream');
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (chunk.length === 0) {
      if (cb) process.nextTick(cb);
      return true;
    }
    this.queue.push({ chunk, cb, headroom });
    this.queuedBytes += chunk.length;
    this.owner.flush(this);
    if (this.queuedBytes > 0 || this.owner.socketNeedsDrain) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /** Half-closes our side: END_STREAM goes out after everything queued. */
  end(): void {
    if (this.closed || this.endQueued) return;
    this.endQueued = true;
    this.owner.flush(this);
  }

  /** Server side: answers the request. `endStream` makes this the whole answer. */
  respond(headers: Headers, endStream = false): void {
    if (this.closed || this.sentEnd) return;
    this.owner.sendHeaders(this, headers, endStream);
    if (endStream) {
      this.endQueued = true;
      this.sentEnd = true;
      this.maybeDone();
    }
  }

  /** Sends RST_STREAM(`code`) and closes the stream at once; queued data is dropped. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.closure = Closure.RESET_BY_US;
    this.owner.sendReset(this, code);
    this.finish(code, null);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // Delivered from the next tick, like a Node stream: the caller may still be attaching listeners.
    if ((this.inbox.length > 0 || (this.remoteEnded && !this.endDelivered)) && !this.deliverScheduled) {
      this.deliverScheduled = true;
      process.nextTick(() => {
        this.deliverScheduled = false;
        this.deliver();
      });
    }
  }

  // ---- called by the session ----

  /** DATA payload bytes from the peer (already checked against the windows). */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    if (this.paused || this.inbox.length > 0) {
      this.hold(chunk);
      return;
    }
    const borrowed = this.owner.borrowedReads;
    this.lastBorrowed = borrowed && this.takesBorrowed;
    this.emit('data', borrowed && !this.takesBorrowed ? Buffer.from(chunk) : chunk);
    this.lastBorrowed = false;
    this.owner.consumed(this, chunk.length);
  }

  /**
   * From now on 'data' may hand over views of the session's read buffer, valid only during the event: a
   * consumer that still references one afterwards (a write that did not complete at once) calls keep() in the
   * event. Consumers that did not opt in get their own copies.
   */
  acceptBorrowedChunks(): void {
    this.takesBorrowed = true;
  }

  /** See acceptBorrowedChunks(); only meaningful inside a 'data' event. */
  keep(): void {
    if (this.lastBorrowed) this.owner.keepRead();
  }

  /**
   * Keeps `chunk` until resume(). Small chunks are copied together, so a peer sending tiny DATA frames into a
   * paused stream holds the window's bytes, not millions of Buffer objects.
   */
  private hold(chunk: Buffer): void {
    this.inboxBytes += chunk.length;
    this.owner.held(chunk.length);
    if (chunk.length >= SMALL_CHUNK) {
      // A borrowed chunk is overwritten by the session's next read: held ones are copied.
      this.inbox.push(this.owner.borrowedReads ? Buffer.from(chunk) : chunk);
      this.inboxRoom = 0;
      return;
    }
    if (this.inboxRoom < chunk.length) {
      this.inbox.push(Buffer.allocUnsafe(COALESCE_SIZE).subarray(0, 0));
      this.inboxRoom = COALESCE_SIZE;
    }
    const last = this.inbox.length - 1;
    const tail = this.inbox[last]!;
    const grown = Buffer.from(tail.buffer, tail.byteOffset, tail.length + chunk.length);
    chunk.copy(grown, tail.length);
    this.inbox[last] = grown;
    this.inboxRoom -= chunk.length;
  }

  /**
   * RST_STREAM(NO_ERROR): the peer's answer is complete and it wants nothing more from us (RFC 9113 §8.1).
   * What it sent is still delivered, then the stream closes without fault; what we had queued is dropped.
   */
  stopSending(): void {
    if (this.closed) return;
    this.dropQueue(new Error('the peer stopped reading this HTTP/2 stream'));
    this.endQueued = true;
    this.sentEnd = true;
    if (!this.remoteEnded) this.receiveEnd();
    else this.maybeDone();
  }

  /** The peer's END_STREAM. */
  receiveEnd(): void {
    if (this.closed || this.remoteEnded) return;
    this.remoteEnded = true;
    if (!this.paused && this.inbox.length === 0) this.deliverEnd();
  }

  /** Closes the stream without sending anything: the peer reset it, or the session ended. */
  finish(code: number, error: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.rstCode = code;
    this.error = error;
    this.inbox = [];
    if (this.inboxBytes > 0) {
      this.owner.held(-this.inboxBytes);
      this.inboxBytes = 0;
    }
    this.dropQueue(error ?? new Error(`HTTP/2 stream reset (code ${code})`));
    this.owner.forget(this);
    process.nextTick(() => this.emit('close'));
  }

  /** The socket drained or our queue emptied: wake a writer that was told to wait. */
  drained(): void {
    if (!this.needDrain || this.queuedBytes > 0 || this.closed) return;
    this.needDrain = false;
    this.emit('drain');
  }

  /** Called when our END_STREAM went out. */
  maybeDone(): void {
    if (this.sentEnd && this.endDelivered && !this.closed) this.finish(ErrorCode.NO_ERROR, null);
  }

  private dropQueue(err: Error): void {
    for (const p of this.queue.splice(0)) if (p.cb) process.nextTick(p.cb, err);
    this.queuedBytes = 0;
    this.queueOffset = 0;
  }

  private deliver(): void {
    while (!this.paused && this.inbox.length > 0 && !this.closed) {
      const chunk = this.inbox.shift()!;
      if (this.inbox.length === 0) this.inboxRoom = 0;
      this.inboxBytes -= chunk.length;
      this.owner.held(-chunk.length);
      this.emit('data', chunk);
      this.owner.consumed(this, chunk.length);
    }
    if (!this.paused && this.inbox.length === 0 && this.remoteEnded && !this.endDelivered) this.deliverEnd();
  }

  private deliverEnd(): void {
    this.endDelivered = true;
    this.emit('end');
    this.maybeDone();
  }
}
