// HBONE wire details: the CONNECT `:authority` (IP literal and port, IPv6 in brackets) and the reason header.

import net from 'node:net';
import type { Endpoint } from '../connection-tracker';

/** Response header carrying the server's reason for a non-200 CONNECT answer. */
export const HBONE_REASON_HEADER = 'x-nodemesh-reason';

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
