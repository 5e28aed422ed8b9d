// Splits an HTTP/2 byte stream into frames: the client preface, DATA streamed through as it arrives, header
// blocks reassembled from HEADERS + CONTINUATION, every other frame buffered whole. Framing errors only; what
// a frame means is the session's business.

import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  FRAME_HEADER_LENGTH,
  Flag,
  FrameType,
  H2ProtocolError,
} from './constants';
import { H2FloodError } from './session-guard';

export interface FrameHandler {
  /** A DATA frame of `length` bytes (padding included) begins on `stream`: flow control is checked here. */
  onDataStart(stream: number, length: number): void;
  /** Payload bytes of the current DATA frame, as views of the socket's read (no copy, no reassembly). */
  onDataChunk(chunk: Buffer): void;
  /** The pad length byte and padding of the current DATA frame: flow-controlled, but not data. */
  onDataPadding(n: number): void;
  onDataEnd(endStream: boolean): void;
  /**
   * A complete header block (HEADERS plus CONTINUATION), padding and priority fields removed. `selfDependent`:
   * the HEADERS frame's priority names its own stream as its dependency (a stream error, RFC 9113 §5.3.1).
   */
  onHeaderBlock(stream: number, endStream: boolean, block: Buffer, selfDependent: boolean): void;
  /** Any other frame with its whole payload (a view valid only during the call). */
  onFrame(type: number, flags: number, stream: number, payload: Buffer): void;
}

const enum Read {
  Preface,
  Header,
  Payload,
  DataPadLength,
  Data,
  Padding,
}

const EMPTY = Buffer.alloc(0);
const FRAGMENT_OVERHEAD = 64;

export class FrameReader {
  private state: Read;
  private prefaceSeen = 0;
  private readonly head = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  private headFill = 0;
  private length = 0;
  private type = 0;
  private flags = 0;
  private stream = 0;
  private payload: Buffer = EMPTY;
  private payloadFill = 0;
  private dataLeft = 0;
  private padLeft = 0;
  private firstFrame = true;
  private halted = false;
  /** Frames other than DATA are buffered whole, so they get a tighter bound than DATA. */
  private readonly maxControlFrame: number;
  // A header block split over HEADERS + CONTINUATION.
  private blockStream = 0;
  private blockEndStream = false;
  private blockSelfDependent = false;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;

  /**
   * `expectPreface`: the server side, which first reads the client's 24-byte preface. `maxFrame` is the
   * SETTINGS_MAX_FRAME_SIZE we advertised; `maxHeaderBlock` bounds a header block before decoding.
   */
  constructor(
    private readonly handler: FrameHandler,
    expectPreface: boolean,
    private readonly maxFrame: number,
    private readonly maxHeaderBlock: number,
  ) {
    this.state = expectPreface ? Read.Preface : Read.Header;
    this.maxControlFrame = Math.min(maxFrame, Math.max(DEFAULT_MAX_FRAME_SIZE, maxHeaderBlock));
  }

  /** Feeds one read. Throws H2ProtocolError on a framing error; the reader is unusable afterwards. */
  push(chunk: Buffer): void {
    let off = 0;
    const end = chunk.length;
    while (off < end && !this.halted) {
      switch (this.state) {
        case Read.Preface: {
          while (off < end && this.prefaceSeen < CLIENT_PREFACE.length) {
            if (chunk[off++] !== CLIENT_PREFACE[this.prefaceSeen++]) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'not an HTTP/2 client preface');
          }
          if (this.prefaceSeen === CLIENT_PREFACE.length) this.state = Read.Header;
          break;
        }
        case Read.Header: {
          if (this.headFill === 0 && end - off >= FRAME_HEADER_LENGTH) {
            this.startFrame(chunk, off);
            off += FRAME_HEADER_LENGTH;
          } else {
            const n = Math.min(FRAME_HEADER_LENGTH - this.headFill, end - off);
            chunk.copy(this.head, this.headFill, off, off + n);
            this.headFill += n;
            off += n;
            if (this.headFill === FRAME_HEADER_LENGTH) {
              this.headFill = 0;
              this.startFrame(this.head, 0);
            }
          }
          break;
        }
        case Read.Payload: {
          const n = Math.min(this.length - this.payloadFill, end - off);
          chunk.copy(this.payload, this.payloadFill, off, off + n);
          this.payloadFill += n;
          off += n;
          if (this.payloadFill === this.length) {
            this.state = Read.Header;
            this.onPayload(this.payload.subarray(0, this.length));
          }
          break;
        }
        case Read.DataPadLength: {
          const pad = chunk[off++]!;
          if (pad >= this.length) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'DATA padding longer than the frame');
          this.dataLeft = this.length - 1 - pad;
          this.padLeft = pad;
          this.handler.onDataPadding(1 + pad);
          this.afterData();
          break;
        }
        case Read.Data: {
          const n = Math.min(this.dataLeft, end - off);
          this.handler.onDataChunk(chunk.subarray(off, off + n));
          off += n;
          this.dataLeft -= n;
          this.afterData();
          break;
        }
        case Read.Padding: {
          const n = Math.min(this.padLeft, end - off);
          off += n;
          this.padLeft -= n;
          this.afterData();
          break;
        }
      }
    }
  }

  /** Ignores everything from now on (the session is gone). */
  halt(): void {
    this.halted = true;
  }

  private startFrame(b: Buffer, at: number): void {
    const length = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
    const type = b[at + 3]!;
    const flags = b[at + 4]!;
    const stream = b.readUInt32BE(at + 5) & 0x7fffffff;
    this.length = length;
    this.type = type;
    this.flags = flags;
    this.stream = stream;
    if (length > this.maxFrame) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, `frame of ${length} bytes exceeds our maximum ${this.maxFrame}`);
    if (this.firstFrame) {
      this.firstFrame = false;
      if (type !== FrameType.SETTINGS) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'the connection preface must start with SETTINGS');
    }
    if (this.blockStream !== 0 && (type !== FrameType.CONTINUATION || stream !== this.blockStream)) {
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `expected CONTINUATION of stream ${this.blockStream}`);
    }
    if (type === FrameType.DATA) {
      if (stream === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'DATA on stream 0');
      if (flags & Flag.PADDED && length === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'padded DATA without a pad length');
      this.handler.onDataStart(stream, length);
      this.dataLeft = length;
      this.padLeft = 0;
      if (flags & Flag.PADDED) this.state = Read.DataPadLength;
      else this.afterData();
      return;
    }
    if (length > this.maxControlFrame) {
      throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, `${length}-byte frame of type ${type}: only DATA may be that large`);
    }
    if (length === 0) {
      this.onPayload(EMPTY);
      return;
    }
    if (this.payload.length < length) this.payload = Buffer.allocUnsafe(Math.max(length, 256));
    this.payloadFill = 0;
    this.state = Read.Payload;
  }

  /** Moves through a DATA frame's parts; reports its end once payload and padding are read. */
  private afterData(): void {
    if (this.dataLeft > 0) this.state = Read.Data;
    else if (this.padLeft > 0) this.state = Read.Padding;
    else {
      this.state = Read.Header;
      this.handler.onDataEnd((this.flags & Flag.END_STREAM) !== 0);
    }
  }

  private onPayload(payload: Buffer): void {
    if (this.type === FrameType.HEADERS) this.startBlock(payload);
    else if (this.type === FrameType.CONTINUATION) {
      if (this.blockStream === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'CONTINUATION without HEADERS');
      this.addBlock(payload);
    } else this.handler.onFrame(this.type, this.flags, this.stream, payload);
  }

  private startBlock(payload: Buffer): void {
    if (this.stream === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'HEADERS on stream 0');
    let start = 0;
    let stop = payload.length;
    if (this.flags & Flag.PADDED) {
      if (payload.length < 1) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'padded HEADERS without a pad length');
      stop -= payload[0]!;
      start = 1;
    }
    if (this.flags & Flag.PRIORITY) start += 5;
    if (stop < start) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, 'HEADERS padding or priority longer than the frame');
    this.blockSelfDependent = (this.flags & Flag.PRIORITY) !== 0 && (payload.readUInt32BE(start - 5) & 0x7fffffff) === this.stream;
    this.blockStream = this.stream;
    this.blockEndStream = (this.flags & Flag.END_STREAM) !== 0;
    this.blockParts = [];
    this.blockBytes = 0;
    this.addBlock(payload.subarray(start, stop));
  }

  private addBlock(fragment: Buffer): void {
    // Each fragment is charged an overhead too, so endless empty CONTINUATION frames hit the bound as well.
    this.blockBytes += fragment.length + FRAGMENT_OVERHEAD;
    if (this.blockBytes > this.maxHeaderBlock) {
      throw new H2FloodError('header_block', `header block over ${this.maxHeaderBlock} bytes`);
    }
    const last = (this.flags & Flag.END_HEADERS) !== 0;
    // The payload buffer is reused by the next frame: fragments that must wait for it are copied.
    this.blockParts.push(last ? fragment : Buffer.from(fragment));
    if (!last) return;
    const stream = this.blockStream;
    const block = this.blockParts.length === 1 ? this.blockParts[0]! : Buffer.concat(this.blockParts);
    this.blockStream = 0;
    this.blockParts = [];
    this.handler.onHeaderBlock(stream, this.blockEndStream, block, this.blockSelfDependent);
  }
}
