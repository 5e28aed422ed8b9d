// A protobuf writer into one growing buffer, for the OTLP encoder: no object per field (protobufjs's Writer
// keeps a list of pending operations and copies at the end; for a batch of spans with some thirty attributes
// each, that garbage was most of the encoding's cost). Nested messages reserve one length byte and shift
// their contents when they turn out longer than 127 bytes.

export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;

  /** `sizeHint`: the expected size, so the buffer rarely grows (each growth copies everything so far). */
  constructor(sizeHint = 4096) {
    this.buf = Buffer.allocUnsafe(Math.max(256, sizeHint));
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): this {
    this.ensure(10);
    // Non-negative values below 2^53 (lengths, tags, enum and int values the encoder writes).
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  string(field: number, s: string): this {
    this.tag(field, 2);
    const len = s.length;
    // Most values are short ASCII: copied by hand, one length byte, no call into C++ per string.
    if (len < 0x80) {
      this.ensure(len + 1);
      const at = this.pos;
      let p = at + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        this.buf[p++] = c;
      }
      if (i === len) {
        this.buf[at] = len;
        this.pos = p;
        return this;
      }
    }
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
    return this;
  }

  /** Hex digits as their bytes (ids). */
  hexBytes(field: number, hex: string): this {
    const n = hex.length >> 1;
    this.tag(field, 2).varint(n);
    this.ensure(n);
    this.pos += this.buf.write(hex, this.pos, n, 'hex');
    return this;
  }

  fixed32(field: number, v: number): this {
    this.tag(field, 5);
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** fixed64 from its two 32-bit halves. */
  fixed64(field: number, lo: number, hi: number): this {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeUInt32LE(lo >>> 0, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
    return this;
  }

  double(field: number, v: number): this {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** Starts a length-delimited field; returns where, for `end`. */
  begin(field: number): number {
    this.tag(field, 2);
    this.ensure(1);
    return this.pos++;
  }

  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    let extra = 0;
    for (let v = len; v >= 0x80; v = Math.floor(v / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    this.pos += extra;
    let v = len;
    let p = at;
    while (v >= 0x80) {
      this.buf[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[p] = v;
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}
