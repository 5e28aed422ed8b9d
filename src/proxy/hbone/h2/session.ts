// One HTTP/2 connection over a TLS socket, either end: its streams and what each frame means for them.
//
// Written for HBONE (CONNECT tunnels between agents) in place of Node's `http2`: DATA payloads go to the
// stream as views of the socket's reads (no reassembly, no copy) and out as a 9-byte header plus the caller's
// own Buffer. Everything a conforming peer may send is handled (HPACK with Huffman and the dynamic table,
// CONTINUATION, padding, PRIORITY, PING, unknown frame types); violations end the stream or the connection
// with the error code RFC 9113 names. The connection below the streams (socket, SETTINGS, flow-control
// credit, control frames, GOAWAY, keepalive, teardown) is H2Connection (connection.ts).

import type net from 'node:net';
import { ErrorCode, Flag, FrameType, H2ProtocolError, MAX_STREAM_ID, MAX_WINDOW, dataFrameInPlace, errorName, frame, frameHeader } from './constants';
import { ClosedStreams, Closure } from './closed-streams';
import { H2Connection, type H2SessionOptions } from './connection';
import { contentLength, validateRequest, validateResponse, validateTrailers } from './headers';
import { HpackDecoder, HpackEncoder } from './hpack';
import { applySettings } from './settings';
import { H2Stream, type Headers, type StreamOwner } from './stream';

export { DEFAULT_KEEPALIVE } from './connection';
export type { H2SessionOptions } from './connection';
export type { H2Keepalive, KeepaliveTiming } from './keepalive';

/** HPACK dynamic table size update to 0 (RFC 7541 §6.3). */
const TABLE_SIZE_ZERO = Buffer.from([0x20]);

/**
 * Events: 'remoteSettings' (PeerSettings, after each SETTINGS from the peer), 'stream' (server: H2Stream with
 * its request headers), 'goaway' (code, lastStreamId, debug Buffer), 'error' (Error: the session failed),
 * 'close' (the socket is closed and every stream with it; emitted once).
 */
export class H2Session extends H2Connection implements StreamOwner {
  private readonly streams = new Map<number, H2Stream>();
  private readonly blocked = new Set<H2Stream>();
  /** How recently closed streams ended: a late frame on one is answered by that (RFC 9113 §5.1). */
  private readonly closedStreams = new ClosedStreams();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private nextStreamId: number;
  private tableAnnounced = false;
  /** The DATA frame being read: its stream, or null when its bytes are dropped; and its length. */
  private dataTarget: H2Stream | null = null;
  private dataLength = 0;

  constructor(socket: net.Socket, opts: H2SessionOptions) {
    super(socket, opts);
    this.decoder = new HpackDecoder({ maxHeaderListSize: this.maxHeaderList });
    this.nextStreamId = this.isServer ? 2 : 1;
  }

  protected get streamCount(): number {
    return this.streams.size;
  }

  protected endStreams(err: Error): void {
    for (const stream of [...this.streams.values()]) stream.finish(ErrorCode.CANCEL, err);
  }

  protected socketDrained(): void {
    for (const stream of this.streams.values()) if (stream.needDrain) stream.drained();
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  // ---- StreamOwner ----

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

  // ---- reading ----

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
      this.settingsAcked();
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

  private streamError(id: number, code: number): void {
    const stream = this.streams.get(id);
    this.provoke(stream ?? id, code);
  }

  private flushBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.blocked.delete(stream);
      this.flush(stream);
    }
  }

}
