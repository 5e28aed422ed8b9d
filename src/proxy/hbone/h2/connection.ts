// One HTTP/2 connection, either end, below its streams: the socket, the frame reader, SETTINGS and their
// acknowledgement, connection-level flow control and memory budget, control frames we owe the peer, GOAWAY,
// keepalive and teardown. H2Session (session.ts) adds the streams and what each frame means for them.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  FrameType,
  H2PeerSilentError,
  H2ProtocolError,
  MAX_FRAME_SIZE_LIMIT,
  type PeerSettings,
  Setting,
  defaultPeerSettings,
  frame,
  goawayFrame,
  u32Frame,
} from './constants';
import { HpackError } from './hpack';
import { FrameReader, type FrameHandler } from './reader';
import { encodeSettings } from './settings';
import { type BorrowedReads, borrowReads } from './borrowed-reads';
import { type H2Counters, newH2Counters } from './h2-counters';
import { type H2Keepalive, Keepalive, type KeepaliveHooks, type KeepaliveTiming } from './keepalive';
import type { PeerBudget } from './peer-budget';
import { DEFAULT_FLOOD_LIMITS, type FloodLimits, H2FloodError, SessionGuard } from './session-guard';

export interface H2SessionOptions {
  role: 'client' | 'server';
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise: what the peer may send on one stream before we credit it. */
  streamWindow: number;
  /** Connection-level receive window (raised from 65,535 right after our SETTINGS). */
  connectionWindow: number;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce. Default 100. */
  maxConcurrentStreams?: number;
  /**
   * SETTINGS_MAX_FRAME_SIZE we advertise. DATA is never reassembled, so large frames cost nothing. Default 1 MiB,
   * and never above either receive window: a peer's largest frame must fit the windows it was given.
   */
  maxFrameSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise; also bounds a header block in flight. Default 64 KiB. */
  maxHeaderListSize?: number;
  /** Bytes of acknowledgements, credit and resets the peer may leave unread before we call it a flood. Default 256 KiB. */
  maxControlBacklog?: number;
  /**
   * Streams the peer may reset per second, together with those we reset for its faults, before we call it a
   * rapid-reset (or made-you-reset) attack. Default 1000. Shorthand for `floodLimits.resetsPerSecond`.
   */
  maxPeerResetsPerSecond?: number;
  /** Per-second allowances for the other floods (see FloodLimits). */
  floodLimits?: Partial<FloodLimits>;
  /** How long the peer may take to acknowledge our SETTINGS before GOAWAY(SETTINGS_TIMEOUT). Default 10 s; 0: no limit. */
  settingsTimeoutMs?: number;
  /**
   * Unread bytes this session may hold for paused streams before it stops crediting the connection window
   * (credit resumes as readers catch up). Bounds a session's buffered DATA to this plus one frame and one
   * connection window, instead of streams × stream window. Default: the connection window.
   */
  maxHeldBytes?: number;
  /** Shared by all sessions with the same peer: their held bytes and resets are bounded together. */
  peerBudget?: PeerBudget;
  /** Where resets, floods and timeouts are counted; shared by a server's or a pool's sessions. */
  counters?: H2Counters;
  /**
   * Liveness, checked every `idleMs`: a session that heard no byte from the peer since the last check sends a
   * PING; if nothing at all arrives within `timeoutMs` more, the session is destroyed with H2PeerSilentError
   * (its streams end with that error). A dead peer is found between idle + timeout and 2 × idle + timeout.
   * Catches what TCP reports late or never: a peer node powered off, a partition, a frozen peer process
   * (TCP retransmits unacknowledged data for ~15 minutes; keepalive probes wait for an idle socket).
   * `whileIdle`: also when no stream is open (a client keeping pooled sessions fit for new streams); else only
   * while streams are open. Absent: no PINGs.
   */
  keepalive?: H2Keepalive;
}

/** HBONE's default: a PING after 10 s without a byte from the peer, the connection ends 10 s later without one. */
export const DEFAULT_KEEPALIVE: Readonly<KeepaliveTiming> = { idleMs: 10_000, timeoutMs: 10_000 };

const DEFAULT_MAX_FRAME = 1 << 20;
/** A TLS socket hands over at most one 16 KiB record's plaintext per read. */
const READ_BUFFER = 16 * 1024;
/** How long a connection we are ending may take to flush its last frames before it is destroyed. */
const LINGER_MS = 5_000;
/** Opaque data of our keepalive PINGs; any bytes from the peer count as an answer, so it need not be unique. */
const KEEPALIVE_PING = Buffer.from('nm-alive', 'latin1');
const DEFAULT_SETTINGS_TIMEOUT_MS = 10_000;

export abstract class H2Connection extends EventEmitter implements FrameHandler {
  readonly remoteSettings: PeerSettings = defaultPeerSettings();
  /** True once close() was called or the peer sent GOAWAY: no new streams. */
  closed = false;
  destroyed = false;
  /** Where this session's resets, floods and timeouts are counted (the options' sink, or its own). */
  readonly counters: H2Counters;

  protected readonly guard: SessionGuard;
  protected readonly isServer: boolean;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS, advertised and enforced. */
  protected readonly maxConcurrent: number;
  protected readonly maxFrame: number;
  protected readonly maxHeaderList: number;
  private readonly maxControlBacklog: number;
  /** Highest stream id the peer opened (server) or we opened (client). */
  protected lastPeerStream = 0;
  private goawaySent = false;
  protected ending = false;
  /** Bytes of frames we owe the peer written since the socket last drained. */
  private controlBacklog = 0;
  private closeEmitted = false;
  private readonly keepalive: Keepalive | null;
  private settingsTimer: NodeJS.Timeout | null = null;

  // Flow control, connection level.
  protected sendWindow = DEFAULT_WINDOW;
  protected recvWindow: number;
  private unacked = 0;
  /** Connection credit held back while the session (or its peer) holds too many unread bytes. */
  private deferredCredit = 0;
  private readonly onRelief = (): void => this.releaseCredit();

  protected readonly reader: FrameReader;
  private readonly reads: BorrowedReads | null;

  constructor(
    readonly socket: net.Socket,
    protected readonly opts: H2SessionOptions,
  ) {
    super();
    this.isServer = opts.role === 'server';
    this.maxConcurrent = opts.maxConcurrentStreams ?? 100;
    // A frame larger than a window we give is one the peer could never send whole (RFC 9113 §6.9.1).
    const windowBound = Math.min(opts.streamWindow, opts.connectionWindow);
    const wanted = Math.min(opts.maxFrameSize ?? DEFAULT_MAX_FRAME, windowBound);
    this.maxFrame = Math.min(Math.max(wanted, DEFAULT_MAX_FRAME_SIZE), MAX_FRAME_SIZE_LIMIT);
    this.maxHeaderList = opts.maxHeaderListSize ?? 64 * 1024;
    this.maxControlBacklog = opts.maxControlBacklog ?? 256 * 1024;
    this.counters = opts.counters ?? newH2Counters();
    const limits: FloodLimits = { ...DEFAULT_FLOOD_LIMITS, ...opts.floodLimits };
    if (opts.maxPeerResetsPerSecond !== undefined) limits.resetsPerSecond = opts.maxPeerResetsPerSecond;
    this.guard = new SessionGuard(limits, this.counters, opts.peerBudget ?? null, opts.maxHeldBytes ?? opts.connectionWindow);
    this.recvWindow = DEFAULT_WINDOW;
    this.reader = new FrameReader(this, this.isServer, this.maxFrame, 2 * this.maxHeaderList);

    // Control frames are small and often answer the peer: Nagle would hold them for an ACK.
    socket.setNoDelay(true);
    socket.cork();
    if (!this.isServer) socket.write(CLIENT_PREFACE);
    this.writeSettings();
    if (opts.connectionWindow > DEFAULT_WINDOW) {
      this.sendWindowUpdate(0, opts.connectionWindow - DEFAULT_WINDOW);
      this.recvWindow = opts.connectionWindow;
    }
    socket.uncork();

    // Reads arrive from the next tick on, after the subclass finished constructing.
    this.reads = borrowReads(socket, READ_BUFFER, (chunk) => this.onData(chunk));
    if (this.reads === null) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onSocketDrain());
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('end', () => {
      if (this.streamCount > 0) this.destroy(new Error('the peer closed the connection with streams open'));
    });
    const settingsTimeoutMs = opts.settingsTimeoutMs ?? DEFAULT_SETTINGS_TIMEOUT_MS;
    if (settingsTimeoutMs > 0) {
      this.settingsTimer = setTimeout(() => {
        this.settingsTimer = null;
        this.counters.settingsTimeouts++;
        this.connectionError(new H2ProtocolError(ErrorCode.SETTINGS_TIMEOUT, 0, `our SETTINGS were not acknowledged within ${settingsTimeoutMs} ms`));
      }, settingsTimeoutMs);
      this.settingsTimer.unref();
    }
    this.keepalive = opts.keepalive ? new Keepalive(opts.keepalive, this.keepaliveHooks()) : null;
  }

  // ---- what the streams layer provides ----

  abstract onDataStart(stream: number, length: number): void;
  abstract onDataChunk(chunk: Buffer): void;
  abstract onDataPadding(n: number): void;
  abstract onDataEnd(endStream: boolean): void;
  abstract onHeaderBlock(stream: number, endStream: boolean, block: Buffer, selfDependent: boolean): void;
  abstract onFrame(type: number, flags: number, stream: number, payload: Buffer): void;
  /** Streams open now. */
  protected abstract get streamCount(): number;
  /** Ends every open stream with CANCEL and `err` (the connection is gone). */
  protected abstract endStreams(err: Error): void;
  /** The socket drained: wake the streams' writers. */
  protected abstract socketDrained(): void;

  /** Our SETTINGS were acknowledged. */
  protected settingsAcked(): void {
    if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
    this.settingsTimer = null;
  }

  /** PINGs we sent for liveness; counted for stats. */
  get pingsSent(): number {
    return this.keepalive?.pingsSent ?? 0;
  }

  /** The SETTINGS_MAX_FRAME_SIZE we advertised. */
  get localMaxFrameSize(): number {
    return this.maxFrame;
  }

  /** Bytes held for paused readers on this session's streams. */
  get heldBytes(): number {
    return this.guard.held;
  }

  get socketPending(): number {
    return this.socket.writableLength;
  }

  get socketNeedsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  get borrowedReads(): boolean {
    return this.reads !== null;
  }

  keepRead(): void {
    this.reads?.keep();
  }

  held(n: number): void {
    this.guard.hold(n);
    if (n < 0 && this.deferredCredit > 0 && !this.guard.overBudget) this.releaseCredit();
  }

  /** Graceful: GOAWAY(NO_ERROR), no new streams; open ones finish, then the connection closes. */
  close(): void {
    if (this.destroyed) return;
    this.closed = true;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    if (this.streamCount === 0) this.finishGracefully();
  }

  /** Ends everything now: open streams close with CANCEL (and `err` as their error). */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closed = true;
    this.reader.halt();
    this.stopTimers();
    this.endStreams(err ?? new Error('HTTP/2 session destroyed'));
    this.socket.destroy();
    if (err && this.listenerCount('error') > 0) this.emit('error', err);
  }

  protected onData(chunk: Buffer): void {
    if (this.keepalive !== null) this.keepalive.heard = true;
    // What one read makes us send (acknowledgements, window updates, resets) leaves in one write.
    this.socket.cork();
    try {
      this.reader.push(chunk);
    } catch (err) {
      if (err instanceof H2ProtocolError) this.connectionError(err);
      else if (err instanceof HpackError) this.connectionError(new H2ProtocolError(ErrorCode.COMPRESSION_ERROR, 0, `bad header block: ${err.message}`));
      else this.connectionError(new H2ProtocolError(ErrorCode.INTERNAL_ERROR, 0, `internal error: ${(err as Error).message}`, err));
    } finally {
      this.socket.uncork();
    }
  }

  protected writeSettings(): void {
    const entries: Array<[number, number]> = [
      [Setting.INITIAL_WINDOW_SIZE, this.opts.streamWindow],
      [Setting.MAX_FRAME_SIZE, this.maxFrame],
      [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderList],
    ];
    entries.push(this.isServer ? [Setting.MAX_CONCURRENT_STREAMS, this.maxConcurrent] : [Setting.ENABLE_PUSH, 0]);
    this.socket.write(frame(FrameType.SETTINGS, 0, 0, encodeSettings(entries)));
  }

  protected sendWindowUpdate(id: number, increment: number): void {
    this.writeControl(u32Frame(FrameType.WINDOW_UPDATE, id, increment));
  }

  protected creditConnection(n: number): void {
    if (this.deferredCredit > 0 || this.guard.overBudget) {
      if (this.deferredCredit === 0) {
        this.counters.creditHeldBack++;
        this.guard.peer?.onRelief(this.onRelief);
      }
      this.deferredCredit += n;
      return;
    }
    this.unacked += n;
    if (this.unacked >= this.opts.connectionWindow / 2 && !this.destroyed) {
      this.sendWindowUpdate(0, this.unacked);
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
  }

  /** Readers caught up (this session's or another of the peer's): give back the credit held back. */
  protected releaseCredit(): void {
    if (this.deferredCredit === 0 || this.destroyed) return;
    if (this.guard.overBudget) {
      this.guard.peer?.onRelief(this.onRelief);
      return;
    }
    this.guard.peer?.cancelRelief(this.onRelief);
    const n = this.deferredCredit;
    this.deferredCredit = 0;
    this.creditConnection(n);
  }

  /**
   * Frames we owe the peer: acknowledgements, credit, resets. None go out once we are ending. A peer that
   * makes us queue them faster than it reads them is flooding us (PING, SETTINGS, bad frames that draw a
   * reset): counted since the socket last drained, so DATA queued for a slow reader never counts.
   */
  protected writeControl(b: Buffer): void {
    if (this.destroyed || this.ending) return;
    if (this.socket.writableLength === 0) this.controlBacklog = 0;
    this.controlBacklog += b.length;
    if (this.controlBacklog > this.maxControlBacklog) {
      this.connectionError(new H2FloodError('control_backlog', 'frames we owe the peer pile up unread'));
      return;
    }
    this.socket.write(b);
  }

  protected sendResetId(id: number, code: number): void {
    this.writeControl(u32Frame(FrameType.RST_STREAM, id, code));
  }

  protected sendGoaway(code: number, debug: string): void {
    if (this.goawaySent) return;
    this.goawaySent = true;
    this.socket.write(goawayFrame(this.isServer ? this.lastPeerStream : 0, code, debug));
  }

  protected onSocketDrain(): void {
    this.controlBacklog = 0;
    this.socketDrained();
  }

  /** The peer broke the protocol: tell it why (GOAWAY), end every stream, close once the GOAWAY is out. */
  protected connectionError(err: H2ProtocolError): void {
    if (this.destroyed) return;
    this.counters.connectionErrors++;
    if (err instanceof H2FloodError) this.counters.floods[err.kind]++;
    this.sendGoaway(err.code, err.message.slice(0, 256));
    this.destroyed = true;
    this.closed = true;
    this.reader.halt();
    this.stopTimers();
    this.endStreams(err);
    this.socket.end();
    this.socket.once('finish', () => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Closing and no streams left: end the connection once our last frames are written. */
  protected finishGracefully(): void {
    if (this.destroyed || this.ending) return;
    this.ending = true;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    this.socket.end();
    // A peer that never closes its side must not keep the connection (and a graceful close()) waiting.
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  protected keepaliveHooks(): KeepaliveHooks {
    return {
      streamsOpen: () => this.streamCount,
      gone: () => this.destroyed,
      sendPing: () => this.writeControl(frame(FrameType.PING, 0, 0, KEEPALIVE_PING)),
      silent: (ms) => this.destroy(new H2PeerSilentError(ms)),
    };
  }

  protected stopTimers(): void {
    this.keepalive?.stop();
    if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
    this.settingsTimer = null;
    this.guard.peer?.cancelRelief(this.onRelief);
  }

  protected onSocketClose(): void {
    if (!this.destroyed) {
      this.destroyed = true;
      this.closed = true;
      const err = new Error('HTTP/2 connection closed');
      this.endStreams(err);
    }
    this.emitClose();
  }

  protected emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.stopTimers();
    process.nextTick(() => this.emit('close'));
  }
}
