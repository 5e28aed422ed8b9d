// One HTTP/2 connection over a TLS socket, either end: frame parsing, SETTINGS, flow control, GOAWAY, streams.
//
// Written for HBONE (CONNECT tunnels between agents) in place of Node's `http2`: DATA payloads go to the
// stream as views of the socket's reads (no reassembly, no copy) and out as a 9-byte header plus the caller's
// own Buffer. Everything a conforming peer may send is handled (HPACK with Huffman and the dynamic table,
// CONTINUATION, padding, PRIORITY, PING, unknown frame types); violations end the stream or the connection
// with the error code RFC 9113 names.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  Flag,
  FrameType,
  H2PeerSilentError,
  H2ProtocolError,
  MAX_FRAME_SIZE_LIMIT,
  MAX_STREAM_ID,
  MAX_WINDOW,
  type PeerSettings,
  Setting,
  dataFrameInPlace,
  defaultPeerSettings,
  errorName,
  frame,
  frameHeader,
  goawayFrame,
  u32Frame,
} from './constants';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack';
import { contentLength, validateRequest, validateResponse, validateTrailers } from './headers';
import { FrameReader, type FrameHandler } from './reader';
import { applySettings, encodeSettings } from './settings';
import { type BorrowedReads, borrowReads } from './borrowed-reads';
import { H2Stream, type Headers, type StreamOwner } from './stream';
import { ClosedStreams, Closure } from './closed-streams';
import { type H2Counters, newH2Counters } from './h2-counters';
import { type H2Keepalive, Keepalive, type KeepaliveHooks, type KeepaliveTiming } from './keepalive';
import type { PeerBudget } from './peer-budget';
import { DEFAULT_FLOOD_LIMITS, type FloodLimits, H2FloodError, SessionGuard } from './session-guard';

export type { H2Keepalive, KeepaliveTiming } from './keepalive';

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
/** HPACK dynamic table size update to 0 (RFC 7541 §6.3). */
const TABLE_SIZE_ZERO = Buffer.from([0x20]);

/**
 * Events: 'remoteSettings' (PeerSettings, after each SETTINGS from the peer), 'stream' (server: H2Stream with
 * its request headers), 'goaway' (code, lastStreamId, debug Buffer), 'error' (Error: the session failed),
 * 'close' (the socket is closed and every stream with it; emitted once).
 */
export class H2Session extends EventEmitter implements StreamOwner, FrameHandler {
  readonly remoteSettings: PeerSettings = defaultPeerSettings();
  /** True once close() was called or the peer sent GOAWAY: no new streams. */
  closed = false;
  destroyed = false;
  /** Where this session's resets, floods and timeouts are counted (the options' sink, or its own). */
  readonly counters: H2Counters;

  private readonly streams = new Map<number, H2Stream>();
  private readonly blocked = new Set<H2Stream>();
  /** How recently closed streams ended: a late frame on one is answered by that (RFC 9113 §5.1). */
  private readonly closedStreams = new ClosedStreams();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly guard: SessionGuard;
  private readonly isServer: boolean;
  private readonly maxConcurrent: number;
  private readonly maxFrame: number;
  private readonly maxHeaderList: number;
  private readonly maxControlBacklog: number;
  private nextStreamId: number;
  /** Highest stream id the peer opened (server) or we opened (client). */
  private lastPeerStream = 0;
  private goawaySent = false;
  private ending = false;
  private tableAnnounced = false;
  /** Bytes of frames we owe the peer written since the socket last drained. */
  private controlBacklog = 0;
  private closeEmitted = false;
  private readonly keepalive: Keepalive | null;
  private settingsTimer: NodeJS.Timeout | null = null;

  // Flow control, connection level.
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private unacked = 0;
  /** Connection credit held back while the session (or its peer) holds too many unread bytes. */
  private deferredCredit = 0;
  private readonly onRelief = (): void => this.releaseCredit();

  private readonly reader: FrameReader;
  private readonly reads: BorrowedReads | null;
  /** The DATA frame being read: its stream, or null when its bytes are dropped; and its length. */
  private dataTarget: H2Stream | null = null;
  private dataLength = 0;

  constructor(
    readonly socket: net.Socket,
    private readonly opts: H2SessionOptions,
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
    this.decoder = new HpackDecoder({ maxHeaderListSize: this.maxHeaderList });
    this.recvWindow = DEFAULT_WINDOW;
    this.nextStreamId = this.isServer ? 2 : 1;
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

    this.reads = borrowReads(socket, READ_BUFFER, (chunk) => this.onData(chunk));
    if (this.reads === null) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onSocketDrain());
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('end', () => {
      if (this.streams.size > 0) this.destroy(new Error('the peer closed the connection with streams open'));
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

  get activeStreams(): number {
    return this.streams.size;
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

  // ---- StreamOwner ----

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

  flush(stream: H2Stream): void {
    if (this.destroyed || stream.closed) return;
    const socket = this.socket;
    const maxFrame = this.remoteSettings.maxFrameSize;
    let corked = false;
    while (stream.queue.length > 0) {
      const allowed = Math.min(this.sendWindow, stream.sendWindow);
      if (allowed <= 0) {
        this.blocked.add(stream);
        break;
      }
      const head = stream.queue[0]!;
      const left = head.chunk.length - stream.queueOffset;
      const n = Math.min(left, allowed, maxFrame);
      const last = n === left;
      const piece = stream.queueOffset === 0 && last ? head.chunk : head.chunk.subarray(stream.queueOffset, stream.queueOffset + n);
      const endStream = last && stream.queue.length === 1 && stream.endQueued;
      if (!corked) {
        socket.cork();
        corked = true;
      }
      const flags = endStream ? Flag.END_STREAM : 0;
      const inPlace = head.headroom && piece === head.chunk;
      if (!inPlace) socket.write(frameHeader(n, FrameType.DATA, flags, stream.id));
      this.sendWindow -= n;
      stream.sendWindow -= n;
      stream.queuedBytes -= n;
      if (last) {
        stream.queue.shift();
        stream.queueOffset = 0;
        socket.write(inPlace ? dataFrameInPlace(piece, flags, stream.id) : piece, head.cb);
      } else {
        stream.queueOffset += n;
        socket.write(piece);
      }
      if (endStream) stream.sentEnd = true;
    }
    if (stream.queue.length === 0) {
      this.blocked.delete(stream);
      if (stream.endQueued && !stream.sentEnd) {
        socket.write(frame(FrameType.DATA, Flag.END_STREAM, stream.id));
        stream.sentEnd = true;
      }
    }
    if (corked) socket.uncork();
    if (stream.sentEnd) stream.maybeDone();
    else if (stream.queue.length === 0 && !socket.writableNeedDrain) stream.drained();
  }

  consumed(stream: H2Stream, n: number): void {
    if (stream.remoteEnded || stream.closed) return;
    stream.unacked += n;
    if (stream.unacked >= this.opts.streamWindow / 2) {
      this.sendWindowUpdate(stream.id, stream.unacked);
      stream.recvWindow += stream.unacked;
      stream.unacked = 0;
    }
  }

  held(n: number): void {
    this.guard.hold(n);
    if (n < 0 && this.deferredCredit > 0 && !this.guard.overBudget) this.releaseCredit();
  }

  sendHeaders(stream: H2Stream, headers: Headers, endStream: boolean): void {
    if (this.destroyed || this.ending) return;
    let block = this.encoder.encode(Object.entries(headers));
    if (!this.tableAnnounced) {
      // Our encoder never indexes. Saying so up front (a table size update to 0) means no later lowering of the
      // peer's SETTINGS_HEADER_TABLE_SIZE can leave its decoder waiting for an update we never send.
      block = Buffer.concat([TABLE_SIZE_ZERO, block]);
      this.tableAnnounced = true;
    }
    // Our header blocks are a few dozen bytes; a CONTINUATION is never needed below the 16 KiB minimum frame.
    if (block.length > this.remoteSettings.maxFrameSize) throw new Error(`header block of ${block.length} bytes exceeds the peer's frame size`);
    this.socket.write(frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), stream.id, block));
  }

  sendReset(stream: H2Stream, code: number): void {
    this.sendResetId(stream.id, code);
  }

  forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.closedStreams.add(stream.id, stream.closure);
    if (this.dataTarget === stream) this.dataTarget = null;
    if (this.closed && this.streams.size === 0) this.finishGracefully();
  }

  // ---- public API ----

  /** Client: opens a stream with `headers` (END_STREAM not set). Throws when the session takes no new streams. */
  request(headers: Headers): H2Stream {
    if (this.isServer) throw new Error('only the client side opens streams');
    if (this.closed || this.destroyed) throw new Error('HTTP/2 session is closing');
    if (this.nextStreamId > MAX_STREAM_ID) throw new Error('HTTP/2 stream ids exhausted on this session');
    if (this.streams.size >= this.remoteSettings.maxConcurrentStreams) {
      throw new Error(`the server allows ${this.remoteSettings.maxConcurrentStreams} concurrent streams`);
    }
    const stream = new H2Stream(this.nextStreamId, this, this.remoteSettings.initialWindowSize, this.opts.streamWindow);
    stream.method = headers[':method'] ?? '';
    this.nextStreamId += 2;
    this.streams.set(stream.id, stream);
    this.sendHeaders(stream, headers, false);
    // Out of stream ids: no new streams here (the pool sees `closed` and dials anew); this one finishes.
    if (this.nextStreamId > MAX_STREAM_ID) this.close();
    return stream;
  }

  /** Graceful: GOAWAY(NO_ERROR), no new streams; open ones finish, then the connection closes. */
  close(): void {
    if (this.destroyed) return;
    this.closed = true;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    if (this.streams.size === 0) this.finishGracefully();
  }

  /** Ends everything now: open streams close with CANCEL (and `err` as their error). */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closed = true;
    this.reader.halt();
    this.stopTimers();
    for (const stream of [...this.streams.values()]) stream.finish(ErrorCode.CANCEL, err ?? new Error('HTTP/2 session destroyed'));
    this.socket.destroy();
    if (err && this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---- reading ----

  private onData(chunk: Buffer): void {
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

  // ---- FrameHandler: what each frame means ----

  onDataStart(id: number, length: number): void {
    if (length > this.recvWindow) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 0, 'DATA beyond the connection window');
    this.recvWindow -= length;
    // The connection window is credited on receipt; what a paused stream holds is bounded by its own window.
    // Crediting on consumption instead would let a few stalled tunnels starve every other one on the session.
    // Past the session's (or its peer's) memory budget, credit waits until readers catch up.
    this.creditConnection(length);
    this.dataLength = length;
    this.dataTarget = null;
    const target = this.streams.get(id);
    if (target === undefined) this.onClosedStream(id, FrameType.DATA);
    else if (target.remoteEnded) this.provoke(target, ErrorCode.STREAM_CLOSED); // half-closed (remote), §5.1
    else if (length > target.recvWindow) this.provoke(target, ErrorCode.FLOW_CONTROL_ERROR);
    else {
      target.recvWindow -= length;
      this.dataTarget = target;
    }
  }

  onDataChunk(chunk: Buffer): void {
    const target = this.dataTarget;
    // A stream reset while its frame is being read drops the rest of the frame.
    if (target === null || target.closed) return;
    // §8.1.1: more DATA than content-length announced makes the message malformed.
    if (target.expectedLength >= 0 && (target.receivedLength += chunk.length) > target.expectedLength) {
      this.dataTarget = null;
      this.provoke(target, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    target.receive(chunk);
  }

  onDataPadding(n: number): void {
    if (this.dataTarget !== null) this.consumed(this.dataTarget, n);
  }

  onDataEnd(endStream: boolean): void {
    const target = this.dataTarget;
    this.dataTarget = null;
    if (this.dataLength === 0 && !endStream) this.guard.idleFrame('empty DATA');
    if (target !== null && endStream && !target.closed) this.endFromPeer(target);
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.PRIORITY:
        this.onPriority(id, payload);
        return;
      case FrameType.RST_STREAM:
        this.onReset(id, payload);
        return;
      case FrameType.SETTINGS:
        this.onSettings(id, flags, payload);
        return;
      case FrameType.PUSH_PROMISE:
        throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'PUSH_PROMISE is not allowed (push is disabled)');
      case FrameType.PING:
        if (id !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'PING on a stream');
        if (payload.length !== 8) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'PING payload is not 8 bytes');
        if (!(flags & Flag.ACK)) {
          this.guard.ping();
          this.writeControl(frame(FrameType.PING, Flag.ACK, 0, payload));
        }
        return;
      case FrameType.GOAWAY:
        this.onGoaway(id, payload);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(id, payload);
        return;
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1), which lets extensions pass; a stream of them is a flood.
        this.guard.idleFrame(`frame type ${type}`);
        return;
    }
  }

  /** A stream id the peer could not have used yet. */
  private isIdle(id: number): boolean {
    const peerOpens = (id & 1) === (this.isServer ? 1 : 0);
    return peerOpens ? id > this.lastPeerStream : id >= this.nextStreamId;
  }

  onHeaderBlock(id: number, endStream: boolean, block: Buffer, selfDependent: boolean): void {
    // Decoded even when the stream is refused: the peer's encoder already counted it in the shared table.
    const { fields, oversize } = this.decoder.decode(block);
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      if (selfDependent) this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
      else this.onStreamHeaders(stream, fields, oversize, endStream);
      return;
    }
    const peerOpens = (id & 1) === (this.isServer ? 1 : 0);
    if (!peerOpens || !this.isServer || id <= this.lastPeerStream) {
      this.onClosedStream(id, FrameType.HEADERS);
      return;
    }
    this.lastPeerStream = id;
    const headers = oversize ? 'header list too large' : validateRequest(fields);
    if (selfDependent || typeof headers === 'string') {
      this.provoke(id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (this.closed || this.streams.size >= this.maxConcurrent) {
      // Refused streams were never processed: the client may retry them elsewhere.
      this.provoke(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    const created = new H2Stream(id, this, this.remoteSettings.initialWindowSize, this.opts.streamWindow);
    created.headers = headers;
    // A CONNECT request has no content: its DATA is the tunnel, never counted against a length.
    if (headers[':method'] !== 'CONNECT') created.expectedLength = contentLength(headers) ?? -1;
    this.streams.set(id, created);
    this.emit('stream', created, headers);
    if (endStream && !created.closed) this.endFromPeer(created);
  }

  /**
   * DATA or HEADERS for a stream that is not open (RFC 9113 §5.1), answered by how it closed: ignored when we
   * reset it (the peer may have had frames in flight), STREAM_CLOSED as a stream error when the peer reset it,
   * as a connection error after both sides ended it. One no longer remembered, at or below the highest id seen,
   * was closed long ago or skipped (implicitly closed): HEADERS there reuses a spent id (PROTOCOL_ERROR, §5.1.1).
   */
  private onClosedStream(id: number, type: number): void {
    const what = type === FrameType.DATA ? 'DATA' : 'HEADERS';
    if (this.isIdle(id)) {
      const which = type === FrameType.DATA ? 'which was never opened' : 'which the peer may not open';
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `${what} on stream ${id}, ${which}`);
    }
    switch (this.closedStreams.get(id)) {
      case Closure.RESET_BY_US:
        if (type === FrameType.HEADERS) this.guard.idleFrame('HEADERS on a stream we reset');
        return;
      case Closure.RESET_BY_PEER:
        this.provoke(id, ErrorCode.STREAM_CLOSED);
        return;
      case Closure.ENDED:
        throw new H2ProtocolError(ErrorCode.STREAM_CLOSED, 0, `${what} on stream ${id}, which both sides had ended`);
      default:
        if (type === FrameType.HEADERS) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `HEADERS on stream ${id}, an id already passed (highest ${this.lastPeerStream})`);
        this.provoke(id, ErrorCode.STREAM_CLOSED);
    }
  }

  private onStreamHeaders(stream: H2Stream, fields: Array<[string, string]>, oversize: boolean, endStream: boolean): void {
    // Half-closed (remote): the peer already ended its side (§5.1).
    if (stream.remoteEnded) return this.provoke(stream, ErrorCode.STREAM_CLOSED);
    if (this.isServer || stream.responded) {
      // Trailers carry no tunnel data, but must end the stream and hold regular fields only (§8.1).
      if (!endStream || oversize || typeof validateTrailers(fields) === 'string') return this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
      this.endFromPeer(stream);
      return;
    }
    const headers = oversize ? 'header list too large' : validateResponse(fields);
    if (typeof headers === 'string') return this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
    const status = Number(headers[':status']);
    if (status < 200) {
      // Informational; the final answer follows (and may not end the stream).
      if (endStream) this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.responded = true;
    stream.headers = headers;
    // A 2xx answer to CONNECT opens a tunnel: any content-length there means nothing (RFC 9110 §9.3.6).
    const tunnel = stream.method === 'CONNECT' && status < 300;
    const noBody = stream.method === 'HEAD' || status === 204 || status === 304;
    if (!tunnel && !noBody) stream.expectedLength = contentLength(headers) ?? -1;
    stream.emit('response', headers);
    if (endStream && !stream.closed) this.endFromPeer(stream);
  }

  /** The peer's END_STREAM: the message is malformed if its DATA fell short of its content-length (§8.1.1). */
  private endFromPeer(stream: H2Stream): void {
    if (stream.expectedLength >= 0 && stream.receivedLength !== stream.expectedLength) {
      this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.receiveEnd();
  }

  /**
   * A stream error caused by the peer: counted against it with its own resets, so a peer cannot make us reset
   * streams (each maybe dialling an upstream) faster than it could reset them itself. Throws past the allowance.
   */
  private provoke(target: H2Stream | number, code: number): void {
    this.guard.provokedReset();
    if (typeof target === 'number') {
      this.sendResetId(target, code);
      this.closedStreams.add(target, Closure.RESET_BY_US);
    } else target.reset(code);
  }

  private onPriority(id: number, payload: Buffer): void {
    if (id === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'PRIORITY on stream 0');
    if (payload.length !== 5) return this.streamError(id, ErrorCode.FRAME_SIZE_ERROR);
    // A stream cannot depend on itself (§5.3.1). Priorities are otherwise ignored (RFC 9113 deprecates them).
    if ((payload.readUInt32BE(0) & 0x7fffffff) === id) {
      const stream = this.streams.get(id);
      this.provoke(stream ?? id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    this.guard.idleFrame('PRIORITY');
  }

  private onReset(id: number, payload: Buffer): void {
    if (id === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'RST_STREAM payload is not 4 bytes');
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `RST_STREAM on stream ${id}, which was never opened`);
      // Crossing ours, or after both sides ended: allowed, but a stream of them is a flood.
      this.guard.idleFrame('RST_STREAM on a closed stream');
      return;
    }
    // A server pays for every stream a client opens (authorization, an upstream dial): rapid reset, CVE-2023-44487.
    if (this.isServer) this.guard.peerReset();
    else this.counters.resetsReceived++;
    stream.closure = Closure.RESET_BY_PEER;
    const code = payload.readUInt32BE(0);
    if (code === ErrorCode.NO_ERROR) stream.stopSending();
    else stream.finish(code, null);
  }

  private onSettings(id: number, flags: number, payload: Buffer): void {
    if (id !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'SETTINGS ACK with a payload');
      if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
      this.settingsTimer = null;
      return;
    }
    this.guard.settingsFrame();
    const windowDelta = applySettings(payload, this.remoteSettings, !this.isServer);
    this.writeControl(frame(FrameType.SETTINGS, Flag.ACK, 0));
    if (windowDelta !== 0) {
      for (const stream of this.streams.values()) {
        stream.sendWindow += windowDelta;
        if (stream.sendWindow > MAX_WINDOW) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 0, 'a stream window grew past 2^31-1');
      }
      if (windowDelta > 0) this.flushBlocked();
    }
    this.emit('remoteSettings', this.remoteSettings);
  }

  private onGoaway(id: number, payload: Buffer): void {
    if (id !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'GOAWAY payload under 8 bytes');
    const last = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    const debug = Buffer.from(payload.subarray(8));
    this.closed = true;
    // Streams we opened past `last` were never processed: safe to retry elsewhere.
    for (const stream of [...this.streams.values()]) {
      const ours = (stream.id & 1) === (this.isServer ? 0 : 1);
      if (ours && stream.id > last) stream.finish(ErrorCode.REFUSED_STREAM, null);
    }
    this.emit('goaway', code, last, debug);
    if (code !== ErrorCode.NO_ERROR) {
      // The peer is ending the connection over an error: its streams will not complete, whether or not it
      // gets round to closing the socket.
      const reason = debug.length > 0 ? `: ${debug.toString('utf8')}` : '';
      this.destroy(new Error(`the peer ended the HTTP/2 connection with GOAWAY ${errorName(code)}${reason}`));
    } else if (this.streams.size === 0) this.finishGracefully();
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 0, 'connection window grew past 2^31-1');
      this.flushBlocked();
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `WINDOW_UPDATE on stream ${id}, which was never opened`);
      // Allowed for a while after a stream closes (§5.1), but carries nothing.
      this.guard.idleFrame('WINDOW_UPDATE on a closed stream');
      return;
    }
    if (increment === 0) return this.provoke(stream, ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.provoke(stream, ErrorCode.FLOW_CONTROL_ERROR);
    if (stream.queue.length > 0) this.flush(stream);
  }

  // ---- writing and teardown ----

  private writeSettings(): void {
    const entries: Array<[number, number]> = [
      [Setting.INITIAL_WINDOW_SIZE, this.opts.streamWindow],
      [Setting.MAX_FRAME_SIZE, this.maxFrame],
      [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderList],
    ];
    entries.push(this.isServer ? [Setting.MAX_CONCURRENT_STREAMS, this.maxConcurrent] : [Setting.ENABLE_PUSH, 0]);
    this.socket.write(frame(FrameType.SETTINGS, 0, 0, encodeSettings(entries)));
  }

  private sendWindowUpdate(id: number, increment: number): void {
    this.writeControl(u32Frame(FrameType.WINDOW_UPDATE, id, increment));
  }

  private creditConnection(n: number): void {
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
  private releaseCredit(): void {
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
  private writeControl(b: Buffer): void {
    if (this.destroyed || this.ending) return;
    if (this.socket.writableLength === 0) this.controlBacklog = 0;
    this.controlBacklog += b.length;
    if (this.controlBacklog > this.maxControlBacklog) {
      this.connectionError(new H2FloodError('control_backlog', 'frames we owe the peer pile up unread'));
      return;
    }
    this.socket.write(b);
  }

  private sendResetId(id: number, code: number): void {
    this.writeControl(u32Frame(FrameType.RST_STREAM, id, code));
  }

  private streamError(id: number, code: number): void {
    const stream = this.streams.get(id);
    this.provoke(stream ?? id, code);
  }

  private sendGoaway(code: number, debug: string): void {
    if (this.goawaySent) return;
    this.goawaySent = true;
    this.socket.write(goawayFrame(this.isServer ? this.lastPeerStream : 0, code, debug));
  }

  private flushBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.blocked.delete(stream);
      this.flush(stream);
    }
  }

  private onSocketDrain(): void {
    this.controlBacklog = 0;
    for (const stream of this.streams.values()) if (stream.needDrain) stream.drained();
  }

  /** The peer broke the protocol: tell it why (GOAWAY), end every stream, close once the GOAWAY is out. */
  private connectionError(err: H2ProtocolError): void {
    if (this.destroyed) return;
    this.counters.connectionErrors++;
    if (err instanceof H2FloodError) this.counters.floods[err.kind]++;
    this.sendGoaway(err.code, err.message.slice(0, 256));
    this.destroyed = true;
    this.closed = true;
    this.reader.halt();
    this.stopTimers();
    for (const stream of [...this.streams.values()]) stream.finish(ErrorCode.CANCEL, err);
    this.socket.end();
    this.socket.once('finish', () => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Closing and no streams left: end the connection once our last frames are written. */
  private finishGracefully(): void {
    if (this.destroyed || this.ending) return;
    this.ending = true;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    this.socket.end();
    // A peer that never closes its side must not keep the connection (and a graceful close()) waiting.
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  private keepaliveHooks(): KeepaliveHooks {
    return {
      streamsOpen: () => this.streams.size,
      gone: () => this.destroyed,
      sendPing: () => this.writeControl(frame(FrameType.PING, 0, 0, KEEPALIVE_PING)),
      silent: (ms) => this.destroy(new H2PeerSilentError(ms)),
    };
  }

  private stopTimers(): void {
    this.keepalive?.stop();
    if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
    this.settingsTimer = null;
    this.guard.peer?.cancelRelief(this.onRelief);
  }

  private onSocketClose(): void {
    if (!this.destroyed) {
      this.destroyed = true;
      this.closed = true;
      const err = new Error('HTTP/2 connection closed');
      for (const stream of [...this.streams.values()]) stream.finish(ErrorCode.CANCEL, err);
    }
    this.emitClose();
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.stopTimers();
    process.nextTick(() => this.emit('close'));
  }
}
