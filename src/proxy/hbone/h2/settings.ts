// SETTINGS payloads (RFC 9113 §6.5): what we announce, and the peer's announcement checked and applied.

import {
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  H2ProtocolError,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW,
  type PeerSettings,
  Setting,
} from './constants';

/** A SETTINGS payload of (identifier, value) pairs. */
export function encodeSettings(entries: Array<[number, number]>): Buffer {
  const payload = Buffer.allocUnsafe(entries.length * 6);
  entries.forEach(([key, value], i) => {
    payload.writeUInt16BE(key, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return payload;
}

/**
 * Applies the peer's SETTINGS to `s`, rejecting values the RFC forbids (connection errors). Returns how much
 * SETTINGS_INITIAL_WINDOW_SIZE moved, which every open stream's send window moves by too (§6.9.2).
 * `fromServer`: a server may not enable push.
 */
export function applySettings(payload: Buffer, s: PeerSettings, fromServer: boolean): number {
  if (payload.length % 6 !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 0, 'SETTINGS payload is not a multiple of 6 bytes');
  let windowDelta = 0;
  for (let at = 0; at < payload.length; at += 6) {
    const key = payload.readUInt16BE(at);
    const value = payload.readUInt32BE(at + 2);
    switch (key) {
      case Setting.HEADER_TABLE_SIZE:
        s.headerTableSize = value; // our encoder never indexes, so any size suits it
        break;
      case Setting.ENABLE_PUSH:
        if (value > 1 || (value === 1 && fromServer)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `SETTINGS_ENABLE_PUSH ${value}`);
        s.enablePush = value === 1;
        break;
      case Setting.MAX_CONCURRENT_STREAMS:
        s.maxConcurrentStreams = value;
        break;
      case Setting.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 0, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        windowDelta += value - s.initialWindowSize;
        s.initialWindowSize = value;
        break;
      case Setting.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
          throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 0, `SETTINGS_MAX_FRAME_SIZE ${value}`);
        }
        s.maxFrameSize = value;
        break;
      case Setting.MAX_HEADER_LIST_SIZE:
        s.maxHeaderListSize = value;
        break;
      default:
        break; // unknown settings are ignored
    }
  }
  return windowDelta;
}
