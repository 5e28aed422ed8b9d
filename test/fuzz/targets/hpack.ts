// Fuzz target hpack: HpackDecoder (RFC 7541) on a sequence of header blocks from one peer encoder, with the
// table sizes the input chooses.
//
// Invariant:
// - decode throws nothing but HpackError (after which the connection is dead: the sequence stops);
// - the dynamic table never holds more octets than SETTINGS_HEADER_TABLE_SIZE allows;
// - a field list is within maxHeaderListSize, or flagged oversize and empty;
// - every field list it returns, encoded again by HpackEncoder, decodes to the same list (names and values
//   are latin1, one char per octet, so any octets survive);
// - Huffman decoding of any octets throws only HpackError.

import { HpackDecoder, HpackEncoder, HpackError } from '../../../src/proxy/hbone/h2/hpack';
import { huffmanDecode } from '../../../src/proxy/hbone/h2/huffman';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const TABLE_SIZES = [0, 64, 4096, 65536];
const LIST_SIZES = [128, 4096, 65536];
const encoder = new HpackEncoder();

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const maxTableSize = input.pick(TABLE_SIZES);
  const maxHeaderListSize = input.pick(LIST_SIZES);
  if (input.bool()) {
    try {
      huffmanDecode(data, 1, data.length);
    } catch (e) {
      if (!(e instanceof HpackError)) throw e;
    }
  }
  const decoder = new HpackDecoder({ maxTableSize, maxHeaderListSize });
  while (input.remaining > 0) {
    const block = input.bytes(2048);
    let result;
    try {
      result = decoder.decode(block);
    } catch (e) {
      if (e instanceof HpackError) return;
      throw e;
    }
    check(decoder.tableSize <= maxTableSize, `dynamic table holds ${decoder.tableSize} octets, over ${maxTableSize}`);
    const { fields, oversize } = result;
    if (oversize) {
      check(fields.length === 0, 'an oversize header list still returned fields');
      continue;
    }
    let size = 0;
    for (const [n, v] of fields) size += n.length + v.length + 32;
    check(size <= maxHeaderListSize, `header list of ${size} octets over the bound ${maxHeaderListSize}`);
    // The encoder is documented for lowercase names; the round trip holds for any latin1 octets all the same.
    const again = new HpackDecoder({ maxHeaderListSize: Number.MAX_SAFE_INTEGER }).decode(encoder.encode(fields)).fields;
    check(
      again.length === fields.length && again.every(([n, v], i) => n === fields[i]![0] && v === fields[i]![1]),
      () => `round trip changed the list: ${JSON.stringify(fields)} became ${JSON.stringify(again)}`,
    );
  }
}

export const target: FuzzTarget = { mode: 'sync', maxLen: 8192, run };
