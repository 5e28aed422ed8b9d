// Trace context on the wire: W3C `traceparent`/`tracestate` (read and written), B3 single (`b3`) and multi
// (`x-b3-*`) headers (read, and rewritten in the form they came in), and the random ids a new span needs.
//
// Anything malformed is ignored as if absent (W3C Trace Context §3.2.2: a receiver that cannot parse
// traceparent starts a new trace, and then drops tracestate too). Ids are lower-case hex strings: they are
// compared and written as such on the request path, and turned into bytes only when exported.

import { randomFillSync } from 'node:crypto';

type HeaderBag = Record<string, string | string[] | undefined>;

export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** The caller's span: 16 lower-case hex digits, not all zero. */
  spanId: string;
  /** The caller's sampling decision (W3C flag 01, B3 `1` or `d`); null when the caller made none (B3 may defer). */
  sampled: boolean | null;
  /** W3C tracestate as received (validated for size only), or null. */
  traceState: string | null;
  /** Which headers carried it, so the next hop gets the same form. */
  format: 'w3c' | 'b3-single' | 'b3-multi';
}

const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
/** version-traceid-parentid-flags; versions above 00 may append fields after a dash (§3.2.4). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
/** W3C allows 32 list members of at most 256 bytes each; a longer header is dropped rather than cut. */
const MAX_TRACESTATE = 512;

function one(h: HeaderBag, name: string): string | undefined {
  const v = h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

/** A traceparent value, or null when malformed (wrong lengths, upper case, version ff, zero ids). */
export function parseTraceparent(value: string): { traceId: string; spanId: string; sampled: boolean } | null {
  const m = TRACEPARENT.exec(value.trim());
  if (m === null) return null;
  const version = m[1]!;
  if (version === 'ff') return null;
  // Version 00 has exactly four fields; a later version may carry more, which we may not understand.
  if (version === '00' && m[5] !== undefined) return null;
  const traceId = m[2]!;
  const spanId = m[3]!;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, sampled: (parseInt(m[4]!, 16) & 1) === 1 };
}

/** B3 ids may be 64-bit trace ids (16 hex digits): W3C wants 128, so they are left-padded as B3 says. */
function b3TraceId(v: string | undefined): string | null {
  if (v === undefined) return null;
  const id = v.toLowerCase();
  if (HEX32.test(id)) return id === ZERO_TRACE ? null : id;
  if (HEX16.test(id)) return id === ZERO_SPAN ? null : `0000000000000000${id}`;
  return null;
}

function b3SpanId(v: string | undefined): string | null {
  if (v === undefined) return null;
  const id = v.toLowerCase();
  return HEX16.test(id) && id !== ZERO_SPAN ? id : null;
}

/** `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`; a lone `0`/`1`/`d` carries only a decision. */
function parseB3Single(v: string): TraceContext | null {
  const parts = v.trim().split('-');
  if (parts.length < 2 || parts.length > 4) return null;
  const traceId = b3TraceId(parts[0]);
  const spanId = b3SpanId(parts[1]);
  if (traceId === null || spanId === null) return null;
  let sampled: boolean | null = null;
  if (parts.length >= 3) {
    const s = parts[2];
    if (s === '1' || s === 'd') sampled = true;
    else if (s === '0') sampled = false;
    else return null;
  }
  if (parts.length === 4 && b3SpanId(parts[3]) === null) return null;
  return { traceId, spanId, sampled, traceState: null, format: 'b3-single' };
}

function parseB3Multi(h: HeaderBag): TraceContext | null {
  const traceId = b3TraceId(one(h, 'x-b3-traceid'));
  const spanId = b3SpanId(one(h, 'x-b3-spanid'));
  if (traceId === null || spanId === null) return null;
  const flags = one(h, 'x-b3-flags');
  const s = one(h, 'x-b3-sampled');
  const sampled = flags === '1' || s === '1' || s === 'true' ? true : s === '0' || s === 'false' ? false : null;
  return { traceId, spanId, sampled, traceState: null, format: 'b3-multi' };
}

/**
 * The caller's trace context: W3C first (it is what the mesh itself writes), then B3 single, then B3 multi.
 * Malformed headers count as absent.
 */
export function extractContext(h: HeaderBag): TraceContext | null {
  const tp = h.traceparent;
  if (tp !== undefined) {
    // Two traceparent fields are malformed (§3.2: the header must not repeat).
    const parsed = typeof tp === 'string' ? parseTraceparent(tp) : null;
    if (parsed !== null) {
      const ts = h.tracestate;
      const state = ts === undefined ? null : Array.isArray(ts) ? ts.join(',') : ts;
      return { ...parsed, traceState: state !== null && state.length > 0 && state.length <= MAX_TRACESTATE ? state : null, format: 'w3c' };
    }
  }
  const b3 = one(h, 'b3');
  if (b3 !== undefined) {
    const c = parseB3Single(b3);
    if (c !== null) return c;
  }
  if (h['x-b3-traceid'] !== undefined) return parseB3Multi(h);
  return null;
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

const B3_MULTI = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

/**
 * Writes the context for the next hop: `traceparent` always (and `tracestate` when there is one), and the B3
 * form the caller used, so an application that reads only B3 continues the same trace.
 */
export function injectContext(h: HeaderBag, traceId: string, spanId: string, sampled: boolean, traceState: string | null, b3: TraceContext['format'] | null): void {
  h.traceparent = formatTraceparent(traceId, spanId, sampled);
  if (traceState !== null) h.tracestate = traceState;
  else delete h.tracestate;
  if (b3 === 'b3-single') {
    h.b3 = `${traceId}-${spanId}-${sampled ? '1' : '0'}`;
  } else if (b3 === 'b3-multi') {
    for (const n of B3_MULTI) delete h[n];
    h['x-b3-traceid'] = traceId;
    h['x-b3-spanid'] = spanId;
    h['x-b3-sampled'] = sampled ? '1' : '0';
  }
}

/**
 * Random span and trace ids from a pool refilled 4 KiB at a time: one `randomFillSync` call serves 170
 * requests' ids, and a zero id (which W3C forbids) is redrawn.
 */
export class IdSource {
  private readonly pool = Buffer.allocUnsafe(4096);
  private at = this.pool.length;

  private take(n: number): string {
    if (this.at + n > this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const s = this.pool.toString('hex', this.at, this.at + n);
    this.at += n;
    return s;
  }

  traceId(): string {
    for (;;) {
      const id = this.take(16);
      if (id !== ZERO_TRACE) return id;
    }
  }

  /** A trace id and a span id as one 48-digit string (one hex conversion for a request that starts a trace). */
  traceAndSpanId(): string {
    for (;;) {
      const ids = this.take(24);
      if (!ids.startsWith(ZERO_TRACE) && !ids.endsWith(ZERO_SPAN)) return ids;
    }
  }

  spanId(): string {
    for (;;) {
      const id = this.take(8);
      if (id !== ZERO_SPAN) return id;
    }
  }
}
