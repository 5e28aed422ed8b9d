// HPACK Huffman code (RFC 7541 Appendix B) and its decoder: a nibble-at-a-time state machine built once at load.

import { NodemeshError } from '../../../util/errors';

/**
 * A header block the peer's HPACK encoder sent cannot be decoded. The HTTP/2 session answers it with a
 * connection error COMPRESSION_ERROR (RFC 7540 §4.3): the decoder's table may no longer match the peer's.
 * Defined here, beside the lowest layer that throws it; `hpack.ts` re-exports it as part of the codec's API.
 */
export class HpackError extends NodemeshError<'NM_HBONE_HPACK'> {
  constructor(reason: string) {
    super('NM_HBONE_HPACK', `HPACK header block rejected: ${reason}`, {
      hint: "the peer's HTTP/2 header encoder is broken or the bytes were corrupted; check the peer's HTTP/2 stack",
    });
  }
}

// The code table, symbol by symbol (0..255 are octets, 256 is EOS): the code right-aligned, and its
// length in bits. Converted from the RFC's table, whose "as hex" and "as bits" columns were checked to
// agree; the unit test checks the Kraft sum is exactly 1 and that every symbol round-trips.
export const HUFFMAN_CODES: Uint32Array = Uint32Array.from([
  /*   0 */ 0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
  /*   8 */ 0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
  /*  16 */ 0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
  /*  24 */ 0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
  /*  32 */ 0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
  /*  40 */ 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
  /*  48 */ 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
  /*  56 */ 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
  /*  64 */ 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
  /*  72 */ 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
  /*  80 */ 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
  /*  88 */ 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  /*  96 */ 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
  /* 104 */ 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
  /* 112 */ 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
  /* 120 */ 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
  /* 128 */ 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
  /* 136 */ 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
  /* 144 */ 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
  /* 152 */ 0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
  /* 160 */ 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
  /* 168 */ 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
  /* 176 */ 0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
  /* 184 */ 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  /* 192 */ 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  /* 200 */ 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
  /* 208 */ 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
  /* 216 */ 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
  /* 224 */ 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
  /* 232 */ 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  /* 240 */ 0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
  /* 248 */ 0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
  /* 256 */ 0x3fffffff,
]);

export const HUFFMAN_LENGTHS: Uint8Array = Uint8Array.from([
  /*   0 */ 13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  /*  16 */ 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  /*  32 */  6, 10, 10, 12, 13,  6,  8, 11, 10, 10,  8, 11,  8,  6,  6,  6,
  /*  48 */  5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8, 15,  6, 12, 10,
  /*  64 */ 13,  6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,
  /*  80 */  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8, 13, 19, 13, 14,  6,
  /*  96 */ 15,  5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,
  /* 112 */  6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7, 15, 11, 14, 13, 28,
  /* 128 */ 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  /* 144 */ 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  /* 160 */ 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  /* 176 */ 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  /* 192 */ 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  /* 208 */ 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  /* 224 */ 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  /* 240 */ 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  /* 256 */ 30,
]);

/** The EOS symbol: 30 one-bits, never valid inside a string (RFC 7541 §5.2). */
export const HUFFMAN_EOS = 256;

// Decoder state machine. A state is an internal node of the code tree (0 = root, 256 of them, since a
// complete tree over 257 leaves has 256 internal nodes); the state is exactly the bits read since the
// last whole symbol. For each (state, 4 input bits) one table entry gives the next state and at most one
// emitted symbol: no code is shorter than 5 bits, so 4 bits can finish at most one.
const NEXT_MASK = 0xff;
const SYM_SHIFT = 8;
const EMIT = 1 << 16;
const FAIL = 1 << 17;

const TRANSITIONS = new Uint32Array(256 * 16);
// ACCEPTS[s] = 1 if a string may end in state s: the bits since the last symbol are padding, which must
// be at most 7 bits and a prefix of EOS, i.e. all ones (§5.2). The root (no pending bits) accepts.
const ACCEPTS = new Uint8Array(256);

function buildDecoder(): void {
  // children[2n + bit]: >= 0 another internal node, < 0 a leaf holding symbol -(v + 1); NONE = unset.
  const NONE = 0x7fff;
  const children = new Int16Array(2 * 256).fill(NONE);
  let nodes = 1;
  for (let sym = 0; sym <= HUFFMAN_EOS; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const slot = 2 * node + ((code >>> i) & 1);
      const child = children[slot];
      if (i === 0) {
        if (child !== NONE) throw new Error(`HPACK Huffman table: code of symbol ${sym} collides with another code`);
        children[slot] = -(sym + 1);
      } else if (child === NONE) {
        if (nodes === 256) throw new Error('HPACK Huffman table: more than 256 internal nodes');
        children[slot] = nodes;
        node = nodes++;
      } else if (child < 0) {
        throw new Error(`HPACK Huffman table: code of symbol ${sym} has another code as a prefix`);
      } else {
        node = child;
      }
    }
  }
  if (nodes !== 256 || children.includes(NONE)) throw new Error('HPACK Huffman table: the code tree is not complete');

  // Depth and all-ones flag of each internal node, from its parent (parents are numbered before children).
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  for (let n = 0; n < 256; n++) {
    for (let bit = 0; bit < 2; bit++) {
      const c = children[2 * n + bit];
      if (c > 0) {
        depth[c] = depth[n] + 1;
        allOnes[c] = allOnes[n] & bit;
      }
    }
  }
  for (let s = 0; s < 256; s++) {
    ACCEPTS[s] = allOnes[s] === 1 && depth[s] <= 7 ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = s;
      let entry = 0;
      for (let i = 3; i >= 0; i--) {
        const c = children[2 * node + ((nibble >>> i) & 1)];
        if (c >= 0) {
          node = c;
          continue;
        }
        const sym = -c - 1;
        if (sym === HUFFMAN_EOS) {
          entry = FAIL;
          break;
        }
        entry = EMIT | (sym << SYM_SHIFT);
        node = 0;
      }
      TRANSITIONS[(s << 4) | nibble] = entry === FAIL ? FAIL : entry | node;
    }
  }
}
buildDecoder();

// Decoded octets land here, then become one latin1 string: no per-symbol string building. Shared by all
// decoders in the process, which is safe because decoding is synchronous.
let scratch = Buffer.allocUnsafe(1024);

/**
 * Decodes the Huffman-coded octets buf[start, end) to a latin1 string (one char per octet).
 * Throws HpackError when the data contains EOS, or the final padding is longer than 7 bits or not all ones.
 */
export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  if (end <= start) return '';
  // At most one symbol per 5 input bits.
  const most = (((end - start) * 8) / 5) | 0;
  if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(most, scratch.length * 2));
  const out = scratch;
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const octet = buf[i];
    const hi = TRANSITIONS[(state << 4) | (octet >>> 4)];
    const lo = TRANSITIONS[((hi & NEXT_MASK) << 4) | (octet & 0x0f)];
    if ((hi | lo) & FAIL) throw new HpackError('Huffman string contains the EOS symbol');
    if (hi & EMIT) out[n++] = (hi >>> SYM_SHIFT) & 0xff;
    if (lo & EMIT) out[n++] = (lo >>> SYM_SHIFT) & 0xff;
    state = lo & NEXT_MASK;
  }
  if (ACCEPTS[state] === 0) throw new HpackError('Huffman string padding is longer than 7 bits or not all ones');
  return out.toString('latin1', 0, n);
}
