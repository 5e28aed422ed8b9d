// HPACK (RFC 7541) for the HBONE HTTP/2 framer: a full decoder, and an encoder that never indexes.

import { HpackError, huffmanDecode } from './huffman';

export { HpackError } from './huffman';

/** A decoded header list, or `oversize` when it exceeded the decoder's maxHeaderListSize. */
export interface HpackDecodeResult {
  /** Name/value pairs in block order, as latin1 strings (one char per octet). Empty when `oversize`. */
  fields: Array<[string, string]>;
  /** The list was larger than maxHeaderListSize: the block was still decoded (the table stays in sync) but its fields were dropped. */
  oversize: boolean;
}

export interface HpackDecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the largest dynamic table the peer may ask for. Default 4096. */
  maxTableSize?: number;
  /** Largest header list (sum of name + value + 32 per field) returned as fields. Default 65536. */
  maxHeaderListSize?: number;
}

// Appendix A; index i is STATIC_TABLE[i - 1].
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], // 1
  [':method', 'GET'], // 2
  [':method', 'POST'], // 3
  [':path', '/'], // 4
  [':path', '/index.html'], // 5
  [':scheme', 'http'], // 6
  [':scheme', 'https'], // 7
  [':status', '200'], // 8
  [':status', '204'], // 9
  [':status', '206'], // 10
  [':status', '304'], // 11
  [':status', '400'], // 12
  [':status', '404'], // 13
  [':status', '500'], // 14
  ['accept-charset', ''], // 15
  ['accept-encoding', 'gzip, deflate'], // 16
  ['accept-language', ''], // 17
  ['accept-ranges', ''], // 18
  ['accept', ''], // 19
  ['access-control-allow-origin', ''], // 20
  ['age', ''], // 21
  ['allow', ''], // 22
  ['authorization', ''], // 23
  ['cache-control', ''], // 24
  ['content-disposition', ''], // 25
  ['content-encoding', ''], // 26
  ['content-language', ''], // 27
  ['content-length', ''], // 28
  ['content-location', ''], // 29
  ['content-range', ''], // 30
  ['content-type', ''], // 31
  ['cookie', ''], // 32
  ['date', ''], // 33
  ['etag', ''], // 34
  ['expect', ''], // 35
  ['expires', ''], // 36
  ['from', ''], // 37
  ['host', ''], // 38
  ['if-match', ''], // 39
  ['if-modified-since', ''], // 40
  ['if-none-match', ''], // 41
  ['if-range', ''], // 42
  ['if-unmodified-since', ''], // 43
  ['last-modified', ''], // 44
  ['link', ''], // 45
  ['location', ''], // 46
  ['max-forwards', ''], // 47
  ['proxy-authenticate', ''], // 48
  ['proxy-authorization', ''], // 49
  ['range', ''], // 50
  ['referer', ''], // 51
  ['refresh', ''], // 52
  ['retry-after', ''], // 53
  ['server', ''], // 54
  ['set-cookie', ''], // 55
  ['strict-transport-security', ''], // 56
  ['transfer-encoding', ''], // 57
  ['user-agent', ''], // 58
  ['vary', ''], // 59
  ['via', ''], // 60
  ['www-authenticate', ''], // 61
];
const STATIC_LENGTH = STATIC_TABLE.length; // 61
const STATIC_NAMES = STATIC_TABLE.map(([name]) => name);
const STATIC_VALUES = STATIC_TABLE.map(([, value]) => value);

// Per-entry overhead in table and header-list accounting (RFC 7541 §4.1, RFC 7540 §6.5.2).
const ENTRY_OVERHEAD = 32;
// Larger integers are no use for an index or a length inside one header block and would lose precision.
const MAX_INT = 0x7fffffff;
// Continuation octets after the prefix: 5 carry 35 bits, more than MAX_INT needs.
const MAX_INT_OCTETS = 5;
const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Decodes header blocks from one peer encoder. One instance per connection direction: the dynamic table
 * is connection state, so every block must go through `decode` in the order the peer sent them.
 */
export class HpackDecoder {
  private readonly maxTableSize: number;
  private readonly maxHeaderListSize: number;
  /** Current table size limit, set by the peer's size updates; never above maxTableSize. */
  private limit: number;
  /** Sum of entry sizes in the table. */
  private size = 0;
  // The dynamic table as a ring, newest at `newest`, older entries behind it. Every entry takes at least
  // 32 octets, so the ring never needs more than maxTableSize / 32 slots; it starts small and doubles up
  // to that, so a large advertised table costs memory only when the peer fills it.
  private names: string[];
  private values: string[];
  private readonly maxSlots: number;
  private newest = -1;
  private count = 0;
  // The block being decoded and the read position, kept as fields so the readers allocate nothing.
  private buf: Buffer = EMPTY;
  private pos = 0;

  constructor(opts: HpackDecoderOptions = {}) {
    this.maxTableSize = opts.maxTableSize ?? 4096;
    this.maxHeaderListSize = opts.maxHeaderListSize ?? 65536;
    if (!Number.isInteger(this.maxTableSize) || this.maxTableSize < 0 || this.maxTableSize > MAX_INT) {
      throw new RangeError(`HPACK maxTableSize must be an integer from 0 to ${MAX_INT}, got ${this.maxTableSize}`);
    }
    this.limit = this.maxTableSize;
    this.maxSlots = Math.max(1, Math.floor(this.maxTableSize / ENTRY_OVERHEAD));
    const slots = Math.min(this.maxSlots, 128);
    this.names = new Array<string>(slots).fill('');
    this.values = new Array<string>(slots).fill('');
  }

  /** Octets the dynamic table holds now (entry sizes as in RFC 7541 §4.1). */
  get tableSize(): number {
    return this.size;
  }

  /** The dynamic table, newest first (index 62 first); for tests and debugging, not the hot path. */
  tableEntries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.count; i++) {
      const slot = this.slotOf(i);
      out.push([this.names[slot], this.values[slot]]);
    }
    return out;
  }

  /**
   * Decodes one complete header block (HEADERS plus any CONTINUATION payloads, concatenated).
   * Throws HpackError on any malformed input; the caller must then fail the whole connection, as the
   * table may have diverged from the peer's.
   */
  decode(block: Buffer): HpackDecodeResult {
    this.buf = block;
    this.pos = 0;
    const end = block.length;
    const fields: Array<[string, string]> = [];
    let listSize = 0;
    let oversize = false;
    let sawField = false;
    try {
      while (this.pos < end) {
        const first = block[this.pos];
        let name: string;
        let value: string;
        if (first & 0x80) {
          // Indexed field (§6.1).
          const index = this.readInt(7);
          if (index === 0) throw new HpackError('indexed field with index 0');
          if (index <= STATIC_LENGTH) {
            name = STATIC_NAMES[index - 1];
            value = STATIC_VALUES[index - 1];
          } else {
            const slot = this.dynamicSlot(index);
            name = this.names[slot];
            value = this.values[slot];
          }
        } else if (first & 0x40) {
          // Literal with incremental indexing (§6.2.1).
          const index = this.readInt(6);
          name = index === 0 ? this.readString() : this.nameAt(index);
          value = this.readString();
          this.insert(name, value);
        } else if (first & 0x20) {
          // Dynamic table size update (§6.3). Only before the first field: §4.2 ties it to the start of
          // a block, and a later one would leave the fields before it referring to a table we then cut.
          if (sawField) throw new HpackError('dynamic table size update after a header field');
          const max = this.readInt(5);
          if (max > this.maxTableSize) {
            throw new HpackError(`dynamic table size update to ${max} exceeds our SETTINGS_HEADER_TABLE_SIZE ${this.maxTableSize}`);
          }
          this.limit = max;
          this.evictTo(max);
          continue;
        } else {
          // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3): same shape; the
          // never-indexed flag only matters to a re-encoding intermediary, which we are not.
          const index = this.readInt(4);
          name = index === 0 ? this.readString() : this.nameAt(index);
          value = this.readString();
        }
        sawField = true;
        if (oversize) continue;
        listSize += name.length + value.length + ENTRY_OVERHEAD;
        if (listSize > this.maxHeaderListSize) {
          // Keep decoding so the table follows the peer's; only this stream's fields are dropped.
          oversize = true;
          fields.length = 0;
          continue;
        }
        fields.push([name, value]);
      }
    } finally {
      // Do not keep the caller's buffer (often a slice of a large socket read) alive between blocks.
      this.buf = EMPTY;
    }
    return { fields, oversize };
  }

  /** Reads an integer with an N-bit prefix at `pos` (§5.1). */
  private readInt(prefixBits: number): number {
    const buf = this.buf;
    if (this.pos >= buf.length) throw new HpackError('header block ends before an integer');
    const mask = (1 << prefixBits) - 1;
    let value = buf[this.pos++] & mask;
    if (value < mask) return value;
    for (let shift = 0; ; shift += 7) {
      if (shift === 7 * MAX_INT_OCTETS) throw new HpackError(`integer longer than ${MAX_INT_OCTETS} continuation octets`);
      if (this.pos >= buf.length) throw new HpackError('header block ends inside an integer');
      const octet = buf[this.pos++];
      // Multiply rather than shift: 127 << 28 would overflow a 32-bit int.
      value += (octet & 0x7f) * 2 ** shift;
      if (value > MAX_INT) throw new HpackError('integer larger than 2^31 - 1');
      if ((octet & 0x80) === 0) return value;
    }
  }

  /** Reads a string literal (§5.2): raw octets as latin1, or Huffman-coded. */
  private readString(): string {
    const buf = this.buf;
    const huffman = (buf[this.pos] & 0x80) !== 0;
    const len = this.readInt(7);
    const start = this.pos;
    if (len > buf.length - start) throw new HpackError(`string literal of ${len} octets runs past the end of the header block`);
    this.pos = start + len;
    return huffman ? huffmanDecode(buf, start, start + len) : buf.toString('latin1', start, start + len);
  }

  private nameAt(index: number): string {
    return index <= STATIC_LENGTH ? STATIC_NAMES[index - 1] : this.names[this.dynamicSlot(index)];
  }

  /** Ring slot of the dynamic entry with HPACK index `index` (> 61); throws if there is none. */
  private dynamicSlot(index: number): number {
    const i = index - STATIC_LENGTH - 1;
    if (i >= this.count) throw new HpackError(`index ${index} is past the end of the table (${STATIC_LENGTH + this.count} entries)`);
    return this.slotOf(i);
  }

  /** Ring slot of the i-th newest entry (0 = newest). */
  private slotOf(i: number): number {
    const slots = this.names.length;
    return (this.newest - i + slots) % slots;
  }

  /** Adds an entry, evicting from the oldest end (§4.4); an entry larger than the limit empties the table. */
  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.limit) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.limit - size);
    // After the eviction count < limit / 32 <= maxSlots, so growing always makes room.
    if (this.count === this.names.length) this.grow();
    this.newest = (this.newest + 1) % this.names.length;
    this.names[this.newest] = name;
    this.values[this.newest] = value;
    this.count++;
    this.size += size;
  }

  /** Doubles the ring (up to maxSlots), laying the entries out oldest first from slot 0. */
  private grow(): void {
    const slots = Math.min(this.maxSlots, this.names.length * 2);
    const names = new Array<string>(slots).fill('');
    const values = new Array<string>(slots).fill('');
    for (let i = 0; i < this.count; i++) {
      const from = this.slotOf(this.count - 1 - i);
      names[i] = this.names[from];
      values[i] = this.values[from];
    }
    this.names = names;
    this.values = values;
    this.newest = this.count - 1;
  }

  private evictTo(target: number): void {
    while (this.size > target) {
      const slot = this.slotOf(this.count - 1);
      this.size -= this.names[slot].length + this.values[slot].length + ENTRY_OVERHEAD;
      // Drop the references so evicted strings can be collected.
      this.names[slot] = '';
      this.values[slot] = '';
      this.count--;
    }
  }
}

// Encoder lookup: name -> its first static index, and the static indexes of its values.
const STATIC_BY_NAME = new Map<string, { index: number; values: Map<string, number> }>();
STATIC_TABLE.forEach(([name, value], i) => {
  let entry = STATIC_BY_NAME.get(name);
  if (!entry) {
    entry = { index: i + 1, values: new Map() };
    STATIC_BY_NAME.set(name, entry);
  }
  if (!entry.values.has(value)) entry.values.set(value, i + 1);
});

/**
 * Encodes header lists without the dynamic table, so it keeps no state and never needs the peer's
 * SETTINGS_HEADER_TABLE_SIZE: a field matching a static entry exactly is one indexed octet, any other is
 * a literal without indexing (static name index when there is one). No Huffman: our CONNECT fields are
 * short, and raw octets cost no CPU.
 */
export class HpackEncoder {
  /**
   * Names must already be lowercase (HTTP/2 requires it; the caller owns that). Names and values are
   * written as latin1: each char is one octet, so chars above U+00FF must not be passed.
   */
  encode(fields: Array<[string, string]>): Buffer {
    // Two passes so the result is allocated at its exact size (a subarray of an over-sized buffer costs
    // another Buffer object). The first pass remembers each field's static match for the second.
    if (plans.length < fields.length) plans = new Int32Array(Math.max(fields.length, plans.length * 2));
    let size = 0;
    for (let i = 0; i < fields.length; i++) {
      const [name, value] = fields[i];
      const known = STATIC_BY_NAME.get(name);
      const exact = known?.values.get(value);
      if (exact !== undefined) {
        plans[i] = exact;
        size += 1;
        continue;
      }
      if (known !== undefined) {
        plans[i] = -known.index;
        size += intLength(4, known.index);
      } else {
        plans[i] = 0;
        size += 1 + intLength(7, name.length) + name.length;
      }
      size += intLength(7, value.length) + value.length;
    }
    const out = Buffer.allocUnsafe(size);
    let pos = 0;
    for (let i = 0; i < fields.length; i++) {
      const [name, value] = fields[i];
      const plan = plans[i];
      if (plan > 0) {
        pos = writeInt(out, pos, 0x80, 7, plan);
        continue;
      }
      if (plan < 0) {
        pos = writeInt(out, pos, 0x00, 4, -plan);
      } else {
        out[pos++] = 0x00;
        pos = writeInt(out, pos, 0x00, 7, name.length);
        pos = writeLatin1(out, pos, name);
      }
      pos = writeInt(out, pos, 0x00, 7, value.length);
      pos = writeLatin1(out, pos, value);
    }
    return out;
  }
}

// Per-field plan of the encoder's first pass: > 0 static index of an exact match, < 0 minus the static
// index of the name, 0 a new name. Shared, as encoding is synchronous.
let plans = new Int32Array(16);

/** Octets of an integer with an N-bit prefix, prefix octet included. */
function intLength(prefixBits: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) return 1;
  let n = 2;
  for (let rest = value - mask; rest >= 0x80; rest = Math.floor(rest / 0x80)) n++;
  return n;
}

/** Writes a string as latin1. Short strings go byte by byte: cheaper than a call into the binding. */
function writeLatin1(out: Buffer, pos: number, s: string): number {
  if (s.length > 32) return pos + out.write(s, pos, 'latin1');
  for (let i = 0; i < s.length; i++) out[pos + i] = s.charCodeAt(i);
  return pos + s.length;
}

/** Writes `value` as an integer with an N-bit prefix after the pattern bits `high` (§5.1). */
function writeInt(out: Buffer, pos: number, high: number, prefixBits: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out[pos++] = high | value;
    return pos;
  }
  out[pos++] = high | mask;
  let rest = value - mask;
  while (rest >= 0x80) {
    out[pos++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[pos++] = rest;
  return pos;
}
