// Well-formedness of decoded header lists (RFC 9113 §8.2-8.3): what makes a request, a response or trailers malformed.

import type { Headers } from './stream';

const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
const RESPONSE_PSEUDO = new Set([':status']);
const NO_PSEUDO = new Set<string>();
/** Connection-specific fields have no meaning in HTTP/2 (§8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * §8.2.1: a name is never empty and has no byte in 0x00-0x20, 0x41-0x5a (uppercase) or 0x7f-0xff, and no colon
 * except the one that starts a pseudo-header. Checked by code point, without a regular expression per field:
 * this runs for every header of every stream.
 */
function badNameAt(name: string, from: number): boolean {
  for (let i = from; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || c === 0x3a) return true;
  }
  return false;
}

/** §8.2.1: no NUL, CR or LF anywhere, no leading or trailing SP or HTAB. */
function badValue(value: string): string | null {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return 'a NUL, CR or LF';
  }
  if (value.length > 0) {
    const first = value.charCodeAt(0);
    const last = value.charCodeAt(value.length - 1);
    if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return 'leading or trailing whitespace';
  }
  return null;
}

/** Folds a field list into an object, or says why it is malformed. */
function fold(fields: Array<[string, string]>, pseudo: Set<string>): Headers | string {
  // No prototype: a field named `constructor` or `__proto__` is just a field.
  const out: Headers = Object.create(null) as Headers;
  let regularSeen = false;
  for (const [name, value] of fields) {
    if (name.length === 0) return 'empty field name';
    const isPseudo = name.charCodeAt(0) === 0x3a;
    if (badNameAt(name, isPseudo ? 1 : 0) || (isPseudo && name.length === 1)) return `field name ${JSON.stringify(name)} has a character RFC 9113 §8.2.1 forbids`;
    const bad = badValue(value);
    if (bad !== null) return `field ${name} has ${bad} in its value`;
    if (isPseudo) {
      if (regularSeen) return `pseudo-header ${name} after regular fields`;
      if (!pseudo.has(name)) return pseudo.size === 0 ? `pseudo-header ${name} in trailers` : `pseudo-header ${name} is not allowed here`;
      if (name in out) return `pseudo-header ${name} repeated`;
      out[name] = value;
      continue;
    }
    regularSeen = true;
    if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) return `connection-specific field ${name}`;
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}

export function validateRequest(fields: Array<[string, string]>): Headers | string {
  const h = fold(fields, REQUEST_PSEUDO);
  if (typeof h === 'string') return h;
  const method = h[':method'];
  if (method === undefined) return 'no :method';
  if (method === 'CONNECT' && h[':protocol'] === undefined) {
    // Plain CONNECT (§8.5): the target is the authority alone.
    if (h[':authority'] === undefined) return 'CONNECT without :authority';
    if (h[':scheme'] !== undefined || h[':path'] !== undefined) return 'CONNECT with :scheme or :path';
    return h;
  }
  if (h[':scheme'] === undefined || h[':path'] === undefined) return `${method} without :scheme or :path`;
  if (h[':path'] === '') return 'empty :path';
  if (contentLength(h) === undefined) return 'malformed content-length';
  return h;
}

export function validateResponse(fields: Array<[string, string]>): Headers | string {
  const h = fold(fields, RESPONSE_PSEUDO);
  if (typeof h === 'string') return h;
  const status = h[':status'];
  if (status === undefined || !/^[1-9]\d\d$/.test(status)) return `bad :status ${JSON.stringify(status ?? '')}`;
  if (contentLength(h) === undefined) return 'malformed content-length';
  return h;
}

/** Trailers (§8.1): regular fields only, under the same rules as any header list. */
export function validateTrailers(fields: Array<[string, string]>): Headers | string {
  return fold(fields, NO_PSEUDO);
}

/**
 * The declared content length: null when there is none, undefined when it is malformed (not digits, or
 * repeated with different values, which `fold` joined with ", ").
 */
export function contentLength(h: Headers): number | null | undefined {
  const raw = h['content-length'];
  if (raw === undefined) return null;
  let value: number | null = null;
  for (const part of raw.split(', ')) {
    if (!/^\d{1,15}$/.test(part)) return undefined;
    const n = Number(part);
    if (value !== null && n !== value) return undefined;
    value = n;
  }
  return value;
}
