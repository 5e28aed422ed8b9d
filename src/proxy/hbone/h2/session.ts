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
import { validateRequest, validateResponse } from './headers';
import { FrameReader, type FrameHandler } from './reader';
import { applySettings, encodeSettings } from './settings';
import { type BorrowedReads, borrowReads } from './borrowed-reads';
import { H2Stream, type Headers, type StreamOwner } from './stream';

export interface H2SessionOptions {
  role: 'client' | 'server';
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise: what the peer may send on one stream before we credit it. */
  streamWindow: number;
  /** Connection-level receive window (raised from 65,535 right after our SETTINGS). */
  connectionWindow: number;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce. Default 100. */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_FRAME_SIZE we advertise. DATA is never reassembled, so large frames cost nothing. Default 1 MiB. */
  maxFrameSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise; also bounds a header block in flight. Default 64 KiB. */
  maxHeaderListSize?: number;
  /** Bytes of acknowledgements, credit and resets the peer may leave unread before we call it a flood. Default 256 KiB. */
  maxControlBacklog?: number;
  /** Server: streams the client may reset per second before we call it a rapid-reset attack. Default 1000. */
  maxPeerResetsPerSecond?: number;
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

/** How often a session checks its peer's liveness, and how long an unanswered PING may wait. */
export interface KeepaliveTiming {
  idleMs: number;
  timeoutMs: number;
}

export interface H2Keepalive extends KeepaliveTiming {
  whileIdle: boolean;
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

  private readonly streams = new Map<number, H2Stream>();
  private readonly blocked = new Set<H2Stream>();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
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
  private readonly maxPeerResetsPerSecond: number;
  private resetWindowStart = 0;
  private resetsInWindow = 0;
  private closeEmitted = false;
  /** Keepalive: bytes arrived since the last check; the check's timer; whether our PING is unanswered. */
  private heard = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private pingOutstanding = false;
  /** PINGs we sent for liveness; counted for stats. */
  pingsSent = 0;

  // Flow control, connection level.
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private unacked = 0;

  private readonly reader: FrameReader;
  private readonly reads: BorrowedReads | null;
  /** The DATA frame being read: its stream, or null when its bytes are dropped. */
  private dataTarget: H2Stream | null = null;

  constructor(
    readonly socket: net.Socket,
    private readonly opts: H2SessionOptions,
  ) {
    super();
    this.isServer = opts.role === 'server';
    this.maxConcurrent = opts.maxConcurrentStreams ?? 100;
    this.maxFrame = Math.min(Math.max(opts.maxFrameSize ?? DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME_SIZE), MAX_FRAME_SIZE_LIMIT);
    this.maxHeaderList = opts.maxHeaderListSize ?? 64 * 1024;
    this.maxControlBacklog = opts.maxControlBacklog ?? 256 * 1024;
    this.maxPeerResetsPerSecond = opts.maxPeerResetsPerSecond ?? 1000;
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
    if (opts.keepalive) this.armKeepalive(opts.keepalive.idleMs);
  }

  get activeStreams(): number {
    return this.streams.size;
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
    for (const stream of [...this.streams.values()]) stream.finish(ErrorCode.CANCEL, err ?? new Error('HTTP/2 session destroyed'));
    this.socket.destroy();
    if (err && this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---- reading ----

  private onData(chunk: Buffer): void {
    this.heard = true;
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
    this.creditConnection(length);
    let target = this.streams.get(id) ?? null;
    if (target === null && this.isIdle(id)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `DATA on stream ${id}, which was never opened`);
    if (target !== null && target.remoteEnded) {
      target.reset(ErrorCode.STREAM_CLOSED);
      target = null;
    } else if (target !== null && length > target.recvWindow) {
      target.reset(ErrorCode.FLOW_CONTROL_ERROR);
      target = null;
    }
    // Frames for a stream already closed (e.g. reset by us while they were in flight) are dropped.
    if (target !== null) target.recvWindow -= length;
    this.dataTarget = target;
  }

  onDataChunk(chunk: Buffer): void {
    // A stream reset while its frame is being read drops the rest of the frame.
    if (this.dataTarget !== null && !this.dataTarget.closed) this.dataTarget.receive(chunk);
  }

  onDataPadding(n: number): void {
    if (this.dataTarget !== null) this.consumed(this.dataTarget, n);
  }

  onDataEnd(endStream: boolean): void {
    const target = this.dataTarget;
    this.dataTarget = null;
    if (target !== null && endStream) target.receiveEnd();
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.PRIORITY:
        if (id === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.streamError(id, ErrorCode.FRAME_SIZE_ERROR);
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
        if (!(flags & Flag.ACK)) this.writeControl(frame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        this.onGoaway(id, payload);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(id, payload);
        return;
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1), which lets extensions pass.
        return;
    }
  }

  /** A stream id the peer could not have used yet. */
  private isIdle(id: number): boolean {
    const peerOpens = (id & 1) === (this.isServer ? 1 : 0);
    return peerOpens ? id > this.lastPeerStream : id >= this.nextStreamId;
  }

  onHeaderBlock(id: number, endStream: boolean, block: Buffer): void {
    // Decoded even when the stream is refused: the peer's encoder already counted it in the shared table.
    const { fields, oversize } = this.decoder.decode(block);
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      this.onStreamHeaders(stream, fields, oversize, endStream);
      return;
    }
    const peerOpens = (id & 1) === (this.isServer ? 1 : 0);
    if (!peerOpens || !this.isServer) {
      if (this.isIdle(id)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `HEADERS on stream ${id}, which the peer may not open`);
      return; // a stream we already closed
    }
    if (id <= this.lastPeerStream) return; // a stream already closed
    this.lastPeerStream = id;
    const headers = oversize ? 'header list too large' : validateRequest(fields);
    if (this.closed || this.streams.size >= this.maxConcurrent || typeof headers === 'string') {
      // Refused streams were never processed: the client may retry them elsewhere.
      this.sendResetId(id, typeof headers === 'string' ? ErrorCode.PROTOCOL_ERROR : ErrorCode.REFUSED_STREAM);
      return;
    }
    const created = new H2Stream(id, this, this.remoteSettings.initialWindowSize, this.opts.streamWindow);
    created.headers = headers;
    this.streams.set(id, created);
    this.emit('stream', created, headers);
    if (endStream) created.receiveEnd();
  }

  private onStreamHeaders(stream: H2Stream, fields: Array<[string, string]>, oversize: boolean, endStream: boolean): void {
    if (this.isServer || stream.responded) {
      // Trailers carry no tunnel data, but must end the stream.
      if (endStream && !oversize) stream.receiveEnd();
      else stream.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    const headers = oversize ? 'header list too large' : validateResponse(fields);
    if (typeof headers === 'string') {
      stream.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    const status = Number(headers[':status']);
    if (status < 200) {
      // Informational; the final answer follows (and may not end the stream).
      if (endStream) stream.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.responded = true;
    stream.headers = headers;
    stream.emit('response', headers);
    if (endStream) stream.receiveEnd();
  }

  private onReset(id: number, payload: Buffer): void {
    if (id === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'RST_STREAM payload is not 4 bytes');
    if (this.isServer) this.countPeerReset();
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `RST_STREAM on stream ${id}, which was never opened`);
      return;
    }
    const code = payload.readUInt32BE(0);
    if (code === ErrorCode.NO_ERROR) stream.stopSending();
    else stream.finish(code, null);
  }

  private onSettings(id: number, flags: number, payload: Buffer): void {
    if (id !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'SETTINGS ACK with a payload');
      return;
    }
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
      return;
    }
    if (increment === 0) return this.streamError(id, ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR);
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
    this.unacked += n;
    if (this.unacked >= this.opts.connectionWindow / 2 && !this.destroyed) {
      this.sendWindowUpdate(0, this.unacked);
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
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
      this.connectionError(new H2ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, 0, 'frames we owe the peer pile up unread'));
      return;
    }
    this.socket.write(b);
  }

  private sendResetId(id: number, code: number): void {
    this.writeControl(u32Frame(FrameType.RST_STREAM, id, code));
  }

  /**
   * Rapid reset (CVE-2023-44487): each stream a client opens costs us an authorization and an upstream
   * dial, its reset costs the client nothing. No honest client resets this many streams a second.
   */
  private countPeerReset(): void {
    const now = performance.now();
    if (now - this.resetWindowStart > 1000) {
      this.resetWindowStart = now;
      this.resetsInWindow = 0;
    }
    if (++this.resetsInWindow > this.maxPeerResetsPerSecond) {
      throw new H2ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, 0, `more than ${this.maxPeerResetsPerSecond} streams reset by the peer in a second`);
    }
  }

  private streamError(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (stream) stream.reset(code);
    else this.sendResetId(id, code);
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
    this.sendGoaway(err.code, err.message.slice(0, 256));
    this.destroyed = true;
    this.closed = true;
    this.reader.halt();
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

  // ---- keepalive ----

  private armKeepalive(ms: number): void {
    this.keepaliveTimer = setTimeout(() => this.checkLiveness(), ms);
    this.keepaliveTimer.unref();
  }

  /** One timer per session, re-armed each time: a flag set per read is all the data path pays. */
  private checkLiveness(): void {
    const { idleMs, timeoutMs, whileIdle } = this.opts.keepalive!;
    this.keepaliveTimer = null;
    if (this.destroyed) return;
    if (this.heard || (!whileIdle && this.streams.size === 0 && !this.pingOutstanding)) {
      this.heard = false;
      this.pingOutstanding = false;
      this.armKeepalive(idleMs);
      return;
    }
    if (this.pingOutstanding) {
      this.destroy(new H2PeerSilentError(idleMs + timeoutMs));
      return;
    }
    this.pingOutstanding = true;
    this.pingsSent++;
    this.writeControl(frame(FrameType.PING, 0, 0, KEEPALIVE_PING));
    this.armKeepalive(timeoutMs);
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
    if (this.keepaliveTimer !== null) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
    process.nextTick(() => this.emit('close'));
  }
}

