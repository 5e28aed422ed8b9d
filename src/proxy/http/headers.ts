// Header handling shared by the HTTP codecs: hop-by-hop removal (RFC 9110 §7.6.1), raw-pair conversion,
// and the few header facts the layers ask about (gRPC, request id).

import type { Headers } from './request';

/** Connection-specific fields a proxy must not forward (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']);

/**
 * Removes hop-by-hop fields, and those the Connection header names, in place. `te: trailers` is the one
 * hop-by-hop value HTTP/2 allows, and gRPC needs it on every hop: it is kept when `keepTeTrailers`.
 */
export function stripHopByHop(h: Headers, keepTeTrailers: boolean): void {
  const conn = h.connection;
  if (conn !== undefined) {
    for (const v of Array.isArray(conn) ? conn : [conn]) {
      for (const name of v.split(',')) {
        const n = name.trim().toLowerCase();
        if (n) delete h[n];
      }
    }
  }
  const te = h.te;
  for (const n of HOP_BY_HOP) if (h[n] !== undefined) delete h[n];
  if (keepTeTrailers && te !== undefined && String(te).toLowerCase().includes('trailers')) h.te = 'trailers';
}

/**
 * Alternating raw name/value Buffers (undici) into a lower-case header object; repeated names become lists.
 * The object has no prototype: a peer's field named `__proto__` or `constructor` is an ordinary field, not a
 * way to replace the object's prototype or to read one of its members as a value.
 */
export function fromRawPairs(raw: (Buffer | string)[]): Headers {
  const h = Object.create(null) as Headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
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
