// Header handling shared by the HTTP codecs: hop-by-hop removal (RFC 9110 §7.6.1), raw-pair conversion,
// and the few header facts the layers ask about (gRPC, request id).

import type { Headers } from './request';

/** Connection-specific fields a proxy must not forward (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']);

/** Extra names the Connection header nominates as hop-by-hop (beyond the usual keep-alive/close/upgrade). */
function nominated(conn: string | string[] | undefined): Set<string> | null {
  if (conn === undefined) return null;
  let out: Set<string> | null = null;
  for (const v of Array.isArray(conn) ? conn : [conn]) {
    for (const name of v.split(',')) {
      const n = name.trim().toLowerCase();
      if (n && n !== 'keep-alive' && n !== 'close' && n !== 'upgrade') (out ??= new Set()).add(n);
    }
  }
  return out;
}

/**
 * A copy of `h` without hop-by-hop fields and those the Connection header names (RFC 9110 §7.6.1). One pass
 * into a fresh object: deleting from the parser's object would turn it into a slow dictionary on every
 * request. `te: trailers` is the one hop-by-hop value HTTP/2 allows, and gRPC needs it on every hop: it is
 * kept when `keepTeTrailers`. No prototype, for the reason given at fromRawPairs.
 */
export function withoutHopByHop(h: Headers, keepTeTrailers: boolean): Headers {
  const out = Object.create(null) as Headers;
  const extra = nominated(h.connection);
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (v === undefined || HOP_BY_HOP.has(k) || (extra !== null && extra.has(k))) continue;
    out[k] = v;
  }
  const te = h.te;
  if (keepTeTrailers && te !== undefined && String(te).toLowerCase().includes('trailers')) out.te = 'trailers';
  return out;
}

/** In place, for objects that are ours already (a few fields, rarely hop-by-hop). */
export function stripHopByHop(h: Headers, keepTeTrailers: boolean): void {
  const extra = nominated(h.connection);
  if (extra !== null) for (const n of extra) delete h[n];
  const te = h.te;
  for (const n of HOP_BY_HOP) if (h[n] !== undefined) delete h[n];
  if (keepTeTrailers && te !== undefined && String(te).toLowerCase().includes('trailers')) h.te = 'trailers';
}

/**
 * Alternating raw name/value Buffers (undici) into a lower-case header object; repeated names become lists.
 * The object has no prototype: a peer's field named `__proto__` or `constructor` is an ordinary field, not a
 * way to replace the object's prototype or to read one of its members as a value.
 */
export function fromRawPairs(raw: (Buffer | string)[], dropHopByHop = false): Headers {
  const h = Object.create(null) as Headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    // What is hop-by-hop on the upstream's connection stays there (names the Connection field adds are
    // dropped by the caller's stripHopByHop, which is cheap on this small object).
    if (dropHopByHop && HOP_BY_HOP.has(name) && name !== 'connection') continue;
    const value = raw[i + 1]!.toString('latin1');
    const cur = h[name];
    if (cur === undefined) h[name] = value;
    else if (Array.isArray(cur)) cur.push(value);
    else h[name] = [cur, value];
  }
  return h;
}

/**
 * One header's value as a single string (lists joined with ", "), or undefined. Own fields only: on a plain
 * object `constructor` or `toString` would otherwise read as present (a route matching on such a field).
 */
export function headerValue(h: Headers, name: string): string | undefined {
  if (!Object.hasOwn(h, name)) return undefined;
  const v = h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

/** gRPC requests carry `content-type: application/grpc` (or `application/grpc+proto`, `+json`, …). */
export function isGrpc(h: Headers): boolean {
  const ct = h['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

/** Headers the mesh sets itself on upstream requests; never taken from mutations or clients verbatim. */
export const ATTEMPT_HEADER = 'x-envoy-attempt-count';
export const REQUEST_ID_HEADER = 'x-request-id';
