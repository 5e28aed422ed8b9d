// HBONE wire details: the CONNECT `:authority` (IP literal and port, IPv6 in brackets), the reason header, refusal frames.

import net from 'node:net';
import type { Endpoint } from '../connection-tracker';
import { ErrorCode, FrameType, frame, goawayFrame } from './h2/constants';

/** Response header carrying the server's reason for a non-200 CONNECT answer. */
export const HBONE_REASON_HEADER = 'x-nodemesh-reason';
/**
 * On a CONNECT to an undeclared port: what the source agent's detection decided (`tcp`, `http1`, `http2`),
 * so the destination agent need not wait for the client's first bytes a second time.
 */
export const HBONE_DETECTED_HEADER = 'x-nodemesh-detected';

export function formatAuthority(ep: Endpoint): string {
  return net.isIPv6(ep.ip) ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/** Parses `1.2.3.4:80` or `[::1]:80`; host names, zone ids, missing or out-of-range ports give null. */
export function parseAuthority(authority: string | undefined): Endpoint | null {
  if (!authority) return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(authority);
  if (m === null) return null;
  const ip = m[1] ?? m[2]!;
  if (m[1] !== undefined ? !net.isIPv6(ip) : !net.isIPv4(ip)) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { ip, port };
}

/**
 * What the server writes, instead of starting HTTP/2, to a client it refuses after the TLS handshake: an empty
 * SETTINGS (the server preface) and a GOAWAY(INADEQUATE_SECURITY) whose debug data is `reason`. No HTTP/2
 * state is ever made for an unauthenticated peer, yet the client learns why it was refused.
 */
export function refusalFrames(reason: string): Buffer {
  return Buffer.concat([frame(FrameType.SETTINGS, 0, 0), goawayFrame(0, ErrorCode.INADEQUATE_SECURITY, reason.slice(0, 512))]);
}
