// Fuzz target http-sniff: the L7 proxy's client-first protocol detection, sniff() on the bytes a client sent
// so far (src/proxy/http/detect.ts).
//
// Invariant:
// - sniff never throws and does work linear in its input (the per-input time bound catches worse);
// - it stops asking for more once the bytes cannot become a request line within its bound: never 'more' at
//   8 KiB or beyond;
// - its answer does not depend on how the bytes were split into reads: a decision ('http1', 'http2', 'tcp')
//   made on a prefix is the decision on the whole, so TCP segmentation cannot change what a connection is
//   treated as.

import { sniff } from '../../../src/proxy/http/detect';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const MAX_LINE = 8192;

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const cut = input.int(65536);
  // Stretches a line past the 8 KiB bound without needing that many input bytes.
  const pad = input.int(3) === 0 ? Buffer.alloc(0) : Buffer.alloc(input.int(2 * MAX_LINE), 0x61);
  const rest = input.rest();
  const tail = rest.indexOf(0x20);
  const buf = pad.length === 0 || tail < 0 ? rest : Buffer.concat([rest.subarray(0, tail + 1), pad, rest.subarray(tail + 1)]);
  const whole = sniff(buf);
  check(!(whole === 'more' && buf.length >= MAX_LINE), `'more' after ${buf.length} bytes`);
  const prefix = buf.subarray(0, Math.min(cut, buf.length));
  const early = sniff(prefix);
  check(early === 'more' || early === whole, () => `the first ${prefix.length} bytes say ${early}, all ${buf.length} say ${whole}`);
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 4096,
  dict: ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'GET ', 'POST ', ' HTTP/1.1\r\n', ' HTTP/1.0\n', 'HTTP/1.', '\r\n', '\x16\x03\x01', 'SSH-2.0-'],
  run,
};
