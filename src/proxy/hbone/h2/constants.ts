// HTTP/2 wire constants (RFC 9113): frame types and flags, error codes, SETTINGS identifiers, protocol limits.

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** RFC 9113 §7. The numbers are the wire values, the same as Node's `http2.constants.NGHTTP2_*`. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_LENGTH = 9;
/** Every window starts here until SETTINGS or WINDOW_UPDATE say otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_FRAME_SIZE_LIMIT = 2 ** 24 - 1;
export const MAX_STREAM_ID = 2 ** 31 - 1;

/** What the peer told us in its SETTINGS; absent entries keep the protocol defaults. */
export interface PeerSettings {
  headerTableSize: number;
  enablePush: boolean;
  /** Infinity until the peer sets a limit. */
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

export function defaultPeerSettings(): PeerSettings {
  return {
    headerTableSize: 4096,
    enablePush: true,
    maxConcurrentStreams: Infinity,
    initialWindowSize: DEFAULT_WINDOW,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: Infinity,
  };
}

const NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

export function errorName(code: number): string {
  return NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/**
 * A protocol violation found while reading. `stream` 0 makes it a connection error (GOAWAY, session ends);
 * otherwise only that stream is reset (RFC 9113 §5.4).
 */
export class H2ProtocolError extends Error {
  constructor(
    readonly code: number,
    readonly stream: number,
    message: string,
    cause?: unknown,
  ) {
    super(`${message} (${errorName(code)})`, cause === undefined ? undefined : { cause });
    this.name = 'H2ProtocolError';
  }
}

/** The peer sent nothing, not even the acknowledgement of our PING, for the keepalive's idle + timeout. */
export class H2PeerSilentError extends Error {
  constructor(readonly silentMs: number) {
    super(`the peer sent nothing for at least ${silentMs} ms, not even an answer to our PING: the connection is presumed dead`);
    this.name = 'H2PeerSilentError';
  }
}

function putHeader(b: Buffer, length: number, type: number, flags: number, stream: number): void {
  b[0] = length >>> 16;
  b[1] = (length >>> 8) & 0xff;
  b[2] = length & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream, 5);
}

/**
 * A DATA frame in place: `payload` is preceded in its ArrayBuffer by FRAME_HEADER_LENGTH bytes the caller gave
 * us (see H2Stream.writeFramed); the header goes there and the frame is one Buffer over both, no copy.
 */
export function dataFrameInPlace(payload: Buffer, flags: number, stream: number): Buffer {
  const b = Buffer.from(payload.buffer, payload.byteOffset - FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + payload.length);
  putHeader(b, payload.length, FrameType.DATA, flags, stream);
  return b;
}

/** A 9-byte frame header, for DATA whose payload is written separately (no copy). */
export function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  putHeader(h, length, type, flags, stream);
  return h;
}

/** A whole frame in one Buffer (control frames and header blocks, which are small). */
export function frame(type: number, flags: number, stream: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  putHeader(b, length, type, flags, stream);
  if (payload) payload.copy(b, FRAME_HEADER_LENGTH);
  return b;
}

/** A frame whose payload is one 32-bit value (RST_STREAM's error code, WINDOW_UPDATE's increment). */
export function u32Frame(type: number, stream: number, value: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(value, 0);
  return frame(type, 0, stream, payload);
}

/** GOAWAY: the last stream id processed, the error code, and a reason for the peer's operator. */
export function goawayFrame(lastStream: number, code: number, debug: string): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const payload = Buffer.allocUnsafe(8 + text.length);
  payload.writeUInt32BE(lastStream, 0);
  payload.writeUInt32BE(code, 4);
  text.copy(payload, 8);
  return frame(FrameType.GOAWAY, 0, 0, payload);
}

/** A session ended because our own code threw (a bug), not because of the peer. */
export function isInternal(err: unknown): boolean {
  return err instanceof H2ProtocolError && err.code === ErrorCode.INTERNAL_ERROR;
}
