// TypeScript mirror of bpf/include/nodemesh_abi.h: constants, layouts, and Buffer encoders/decoders.
// test/unit/datapath-abi.test.ts compiles the C header and checks every number here against it.

import os from 'node:os';
import type { SocketAddress } from './types';

if (os.endianness() !== 'LE') {
  // map keys/values carry host-order integers; the encoders below write little-endian
  throw new Error('nodemesh datapath: big-endian hosts are not supported');
}

export const NM_PORT_OUTBOUND = 15001;
export const NM_PORT_INBOUND = 15006;
export const NM_PORT_HBONE = 15008;
export const NM_AGENT_MARK = 1337;
export const NM_AGENT_MARK_TRANSPARENT = 1338;

export const NM_FAMILY_V4 = 4;
export const NM_FAMILY_V6 = 6;

export const NM_POD_ENROLLED = 1;
export const NM_POD_FAIL_CLOSED = 2;
export const NM_POD_DRAINING = 4;

export const NM_STEER_INBOUND = 1;
export const NM_STEER_HBONE = 2;

export const NM_PODS_MAX = 4096;
export const NM_SOCK_DST_MAX = 65536;
export const NM_TUPLE_DST_MAX = 65536;
export const NM_STEER_MAX = 8192;
export const NM_STATS_MAX = 32;
export const NM_OWN_FLOWS_MAX = 16384;

/** Stat codes (index into nm_stats) and the names status() reports them under. Append only. */
export const NM_STATS: readonly { code: number; name: string; macro: string }[] = [
  { code: 0, name: 'redirect4', macro: 'NM_STAT_REDIRECT4' },
  { code: 1, name: 'redirect6', macro: 'NM_STAT_REDIRECT6' },
  { code: 2, name: 'fail_open', macro: 'NM_STAT_FAIL_OPEN' },
  { code: 3, name: 'fail_closed_deny', macro: 'NM_STAT_FAIL_CLOSED_DENY' },
  { code: 4, name: 'excluded_agent', macro: 'NM_STAT_EXCLUDED_AGENT' },
  { code: 5, name: 'origdst_recorded', macro: 'NM_STAT_ORIGDST_RECORDED' },
  { code: 6, name: 'origdst_missing', macro: 'NM_STAT_ORIGDST_MISSING' },
  { code: 7, name: 'steer_inbound', macro: 'NM_STAT_STEER_INBOUND' },
  { code: 8, name: 'steer_no_listener', macro: 'NM_STAT_STEER_NO_LISTENER' },
  { code: 9, name: 'skipped_dst', macro: 'NM_STAT_SKIPPED_DST' },
  { code: 10, name: 'map_update_failed', macro: 'NM_STAT_MAP_UPDATE_FAILED' },
  { code: 11, name: 'steer_same_pod', macro: 'NM_STAT_STEER_SAME_POD' },
  { code: 12, name: 'steer_own_flow', macro: 'NM_STAT_STEER_OWN_FLOW' },
];
export const NM_STAT__COUNT = 13;

/** struct layouts: size and field offsets, as the C compiler lays them out. */
export const NM_ADDR = { size: 20, ip: 0, port: 16, family: 18, pad: 19 } as const;
export const NM_POD = { size: 32, flags: 0, pad: 4, redirected: 8, failOpen: 16, failClosedDenied: 24 } as const;
export const NM_TUPLE_KEY = { size: 48, netnsCookie: 0, src: 8, dst: 28 } as const;
export const NM_STEER_KEY = { size: 20, ip: 0, family: 16, kind: 17, pad: 18 } as const;
export const NM_CONFIG = { size: 16, agentCgroupId: 0, mark: 8, flags: 12 } as const;

/** Map names as pinned under the pin root. */
export const MAPS = {
  pods: 'nm_pods',
  sockDst: 'nm_sock_dst',
  tupleDst: 'nm_tuple_dst',
  steer: 'nm_steer',
  config: 'nm_config',
  stats: 'nm_stats',
  ownFlows: 'nm_own_flows',
} as const;

// ---- IP text <-> 16 raw bytes (network order), allocation-free ----

/** Writes `ip` as 16 bytes at `off` (v4 in the first 4, rest zero). Returns 4, 6, or 0 when unparsable.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack listener reports) is written as v4. */
export function writeIp(buf: Buffer, off: number, ip: string): 0 | 4 | 6 {
  if (ip.indexOf(':') < 0) {
    buf.fill(0, off, off + 16);
    return parseV4(buf, off, ip, 0, ip.length) ? 4 : 0;
  }
  if (ip.length > 7 && ip.startsWith('::ffff:') && ip.indexOf('.', 7) > 0) {
    buf.fill(0, off, off + 16);
    return parseV4(buf, off, ip, 7, ip.length) ? 4 : 0;
  }
  return parseV6(buf, off, ip) ? 6 : 0;
}

function parseV4(buf: Buffer, off: number, s: string, from: number, to: number): boolean {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46; /* '.' terminator */
    if (c >= 48 && c <= 57) {
      val = val * 10 + (c - 48);
      if (++digits > 3 || val > 255) return false;
    } else if (c === 46) {
      if (digits === 0 || part > 3) return false;
      buf[off + part++] = val;
      val = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const groups = new Uint16Array(8);

function parseV6(buf: Buffer, off: number, s: string): boolean {
  // strip a zone (fe80::1%eth0): the zone is not part of the address bytes
  const pct = s.indexOf('%');
  const end = pct >= 0 ? pct : s.length;
  let n = 0; // groups written
  let gap = -1; // index where '::' was
  let i = 0;
  if (s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (n >= 8) return false;
    // dotted quad tail (::ffff:1.2.3.4 handled earlier; others like 64:ff9b::1.2.3.4 here)
    const dot = s.indexOf('.', i);
    const colon = s.indexOf(':', i);
    if (dot >= 0 && dot < end && (colon < 0 || colon > dot)) {
      if (n > 6) return false;
      const tmp = Buffer.allocUnsafe(4);
      if (!parseV4(tmp, 0, s, i, end)) return false;
      groups[n++] = (tmp[0]! << 8) | tmp[1]!;
      groups[n++] = (tmp[2]! << 8) | tmp[3]!;
      i = end;
      break;
    }
    let v = 0;
    let d = 0;
    while (i < end) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      if (++d > 4) return false;
      i++;
    }
    if (d === 0) return false;
    groups[n++] = v;
    if (i >= end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i >= end) {
      return false;
    }
  }
  if (gap < 0 && n !== 8) return false;
  if (gap >= 0 && n > 7) return false;
  const fill = 8 - n;
  let w = 0;
  for (let g = 0; g < n; g++) {
    if (g === gap) for (let z = 0; z < fill; z++) buf.writeUInt16BE(0, off + 2 * w++);
    buf.writeUInt16BE(groups[g]!, off + 2 * w++);
  }
  if (gap === n) for (let z = 0; z < fill; z++) buf.writeUInt16BE(0, off + 2 * w++);
  return w === 8;
}

/** Formats 16 raw bytes as text: dotted quad for family 4, RFC 5952 compressed form for 6. */
export function readIp(buf: Buffer, off: number, family: number): string {
  if (family === NM_FAMILY_V4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let g = 0; g < 8; ) {
    if (buf.readUInt16BE(off + 2 * g) !== 0) {
      g++;
      continue;
    }
    let e = g;
    while (e < 8 && buf.readUInt16BE(off + 2 * e) === 0) e++;
    if (e - g > bestLen) {
      bestAt = g;
      bestLen = e - g;
    }
    g = e;
  }
  let out = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestAt) {
      out += '::';
      g += bestLen - 1;
      continue;
    }
    if (out.length && !out.endsWith(':')) out += ':';
    out += buf.readUInt16BE(off + 2 * g).toString(16);
  }
  return out;
}

// ---- struct encoders ----

/** struct nm_addr at `off`. Returns false when the IP does not parse. */
export function writeAddr(buf: Buffer, off: number, ip: string, port: number): boolean {
  const fam = writeIp(buf, off + NM_ADDR.ip, ip);
  if (fam === 0) return false;
  buf.writeUInt16LE(port, off + NM_ADDR.port);
  buf[off + NM_ADDR.family] = fam;
  buf[off + NM_ADDR.pad] = 0;
  return true;
}

export function readAddr(buf: Buffer, off: number): SocketAddress & { family: 4 | 6 } {
  const family = buf[off + NM_ADDR.family] === NM_FAMILY_V6 ? 6 : 4;
  return { ip: readIp(buf, off + NM_ADDR.ip, family), port: buf.readUInt16LE(off + NM_ADDR.port), family };
}

/** nm_tuple_dst key for an accepted 15001 connection: src = its peer, dst = its local address. */
export function writeTupleKey(buf: Buffer, netnsCookie: bigint, peer: SocketAddress, local: SocketAddress): boolean {
  buf.writeBigUInt64LE(netnsCookie, NM_TUPLE_KEY.netnsCookie);
  return writeAddr(buf, NM_TUPLE_KEY.src, peer.ip, peer.port) && writeAddr(buf, NM_TUPLE_KEY.dst, local.ip, local.port);
}

export function steerKey(ip: string, kind: number): { key: Buffer; family: 4 | 6 } | null {
  const key = Buffer.alloc(NM_STEER_KEY.size);
  const fam = writeIp(key, NM_STEER_KEY.ip, ip);
  if (fam === 0) return null;
  key[NM_STEER_KEY.family] = fam;
  key[NM_STEER_KEY.kind] = kind;
  return { key, family: fam };
}

export function decodeSteerKey(key: Buffer): { ip: string; family: 4 | 6; kind: number } {
  const family = key[NM_STEER_KEY.family] === NM_FAMILY_V6 ? 6 : 4;
  return { ip: readIp(key, NM_STEER_KEY.ip, family), family, kind: key[NM_STEER_KEY.kind]! };
}

export function u64Key(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

export interface PodValue {
  flags: number;
  redirected: bigint;
  failOpen: bigint;
  failClosedDenied: bigint;
}

export function encodePod(v: PodValue): Buffer {
  const b = Buffer.alloc(NM_POD.size);
  b.writeUInt32LE(v.flags, NM_POD.flags);
  b.writeBigUInt64LE(v.redirected, NM_POD.redirected);
  b.writeBigUInt64LE(v.failOpen, NM_POD.failOpen);
  b.writeBigUInt64LE(v.failClosedDenied, NM_POD.failClosedDenied);
  return b;
}

export function decodePod(b: Buffer): PodValue {
  return {
    flags: b.readUInt32LE(NM_POD.flags),
    redirected: b.readBigUInt64LE(NM_POD.redirected),
    failOpen: b.readBigUInt64LE(NM_POD.failOpen),
    failClosedDenied: b.readBigUInt64LE(NM_POD.failClosedDenied),
  };
}

export function encodeConfig(agentCgroupId: bigint, mark: number, flags = 0): Buffer {
  const b = Buffer.alloc(NM_CONFIG.size);
  b.writeBigUInt64LE(agentCgroupId, NM_CONFIG.agentCgroupId);
  b.writeUInt32LE(mark, NM_CONFIG.mark);
  b.writeUInt32LE(flags, NM_CONFIG.flags);
  return b;
}

/** Sums a PERCPU_ARRAY u64 value buffer (one 8-byte slot per possible CPU). */
export function sumPerCpu(b: Buffer, cpus: number): bigint {
  let s = 0n;
  for (let i = 0; i < cpus; i++) s += b.readBigUInt64LE(i * 8);
  return s;
}
