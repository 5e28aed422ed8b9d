// Fuzz target h2-frames: the HBONE server's HTTP/2 input path below the session, from bytes to a validated
// request: FrameReader (framing, the client preface, header blocks from HEADERS + CONTINUATION) then
// HpackDecoder on each block, then validateRequest (and parseAuthority for a CONNECT). The session itself is
// left out on purpose: it is being reworked, and the reader and decoder are the stable contract below it.
//
// Invariant:
// - nothing throws but H2ProtocolError (its flood subclass included) from the reader and HpackError from the
//   decoder; validateRequest and parseAuthority never throw;
// - the reader hands up no control frame over its bound (max(16 KiB, header block bound), at most the frame
//   size limit) and no header block over the header block bound;
// - a DATA frame's chunks and padding add up to its announced length, and each frame ends once;
// - a decoded field list is within maxHeaderListSize (or flagged oversize and empty).
// The input is split into reads at points the input chooses, so partial frames and headers are exercised.

import { FrameReader, type FrameHandler } from '../../../src/proxy/hbone/h2/reader';
import { CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, H2ProtocolError } from '../../../src/proxy/hbone/h2/constants';
import { HpackDecoder, HpackError } from '../../../src/proxy/hbone/h2/hpack';
import { validateRequest } from '../../../src/proxy/hbone/h2/headers';
import { parseAuthority } from '../../../src/proxy/hbone/protocol';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const HEADER_LISTS = [256, 4096, 65536];
const FRAME_SIZES = [DEFAULT_MAX_FRAME_SIZE, 1 << 20];

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const maxHeaderList = input.pick(HEADER_LISTS);
  const maxFrame = input.pick(FRAME_SIZES);
  const maxBlock = 2 * maxHeaderList;
  const maxControl = Math.min(maxFrame, Math.max(DEFAULT_MAX_FRAME_SIZE, maxBlock));
  const withPreface = input.bool();
  // Up to 8 read boundaries, as offsets into the stream.
  const cuts = Array.from({ length: input.int(9) }, () => input.int(4096));
  const stream = withPreface ? Buffer.concat([CLIENT_PREFACE, input.rest()]) : input.rest();

  const decoder = new HpackDecoder({ maxHeaderListSize: maxHeaderList });
  let dataLeft = -1;
  const handler: FrameHandler = {
    onDataStart(_stream, length) {
      check(dataLeft < 0, 'a DATA frame began inside another');
      check(length <= maxFrame, `DATA of ${length} bytes over the frame limit ${maxFrame}`);
      dataLeft = length;
    },
    onDataChunk(chunk) {
      dataLeft -= chunk.length;
      check(dataLeft >= 0, 'DATA chunks longer than the frame');
    },
    onDataPadding(n) {
      dataLeft -= n;
      check(dataLeft >= 0, 'DATA padding longer than the frame');
    },
    onDataEnd() {
      check(dataLeft === 0, `DATA frame ended with ${dataLeft} bytes unaccounted`);
      dataLeft = -1;
    },
    onHeaderBlock(_stream, _endStream, block) {
      check(block.length <= maxBlock, `header block of ${block.length} bytes over the bound ${maxBlock}`);
      const { fields, oversize } = decoder.decode(block);
      if (oversize) {
        check(fields.length === 0, 'an oversize header list still returned fields');
        return;
      }
      let size = 0;
      for (const [n, v] of fields) size += n.length + v.length + 32;
      check(size <= maxHeaderList, `header list of ${size} bytes returned over the bound ${maxHeaderList}`);
      const h = validateRequest(fields);
      if (typeof h !== 'string' && h[':method'] === 'CONNECT') parseAuthority(h[':authority']);
    },
    onFrame(_type, _flags, _stream, payload) {
      check(payload.length <= maxControl, `control frame of ${payload.length} bytes over the bound ${maxControl}`);
    },
  };
  const reader = new FrameReader(handler, withPreface, maxFrame, maxBlock);
  let at = 0;
  try {
    for (const cut of [...cuts.sort((a, b) => a - b), stream.length]) {
      if (cut <= at) continue;
      reader.push(stream.subarray(at, Math.min(cut, stream.length)));
      at = cut;
      if (at >= stream.length) break;
    }
  } catch (e) {
    if (e instanceof H2ProtocolError || e instanceof HpackError) return;
    throw e;
  }
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 16384,
  dict: [
    Buffer.from('000000040000000000', 'hex'), // empty SETTINGS
    Buffer.from('0000040100000001', 'hex'), // HEADERS header, stream 1
    Buffer.from('000000090400000001', 'hex'), // CONTINUATION, END_HEADERS
    ':method',
    ':authority',
    ':path',
    ':scheme',
    'CONNECT',
    'te',
    'trailers',
  ],
  run,
};
