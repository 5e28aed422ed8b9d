// Well-formedness of decoded header lists (RFC 9113 §8.2-8.3): what makes a request or response malformed.

import type { Headers } from './stream';

const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
const RESPONSE_PSEUDO = new Set([':status']);
/** Connection-specific fields have no meaning in HTTP/2 (§8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** Folds a field list into an object, or says why it is malformed. */
function fold(fields: Array<[string, string]>, pseudo: Set<string>): Headers | string {
  // No prototype: a field named `constructor` or `__proto__` is just a field.
  const out: Headers = Object.create(null) as Headers;
  let regularSeen = false;
  for (const [name, value] of fields) {
    if (name.length === 0) return 'empty field name';
    if (/[A-Z]/.test(name)) return `field name ${JSON.stringify(name)} is not lowercase`;
    if (/[\0\r\n]/.test(value)) return `field ${name} has a NUL, CR or LF in its value`;
    if (name.charCodeAt(0) === 0x3a) {
      if (regularSeen) return `pseudo-header ${name} after regular fields`;
      if (!pseudo.has(name)) return `pseudo-header ${name} is not allowed here`;
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
  return h;
}

export function validateResponse(fields: Array<[string, string]>): Headers | string {
  const h = fold(fields, RESPONSE_PSEUDO);
  if (typeof h === 'string') return h;
  const status = h[':status'];
  if (status === undefined || !/^[1-9]\d\d$/.test(status)) return `bad :status ${JSON.stringify(status ?? '')}`;
  return h;
}
