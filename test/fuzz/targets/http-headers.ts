// Fuzz target http-headers: the L7 proxy's header handling (src/proxy/http/headers.ts) and grpc-timeout
// parsing (src/proxy/http/layers/timeout.ts), on header names and values as peers send them.
//
// Invariant:
// - fromRawPairs (upstream response headers and trailers, as undici hands them over) never throws, and gives
//   a plain header object: every name lower case and its own property, every value a string or a list of
//   strings from the input, nothing inherited (no name such as `__proto__` or `constructor` can reach the
//   object's prototype or read one of its members), and as many values as pairs;
// - stripHopByHop never throws and leaves no hop-by-hop field, nor any field the Connection header names
//   (te: trailers only where asked to keep it);
// - parseGrpcTimeout gives null or a finite number of milliseconds >= 0, and formatGrpcTimeout of that
//   parses back to at least as long.

import { fromRawPairs, headerValue, isGrpc, stripHopByHop } from '../../../src/proxy/http/headers';
import type { Headers } from '../../../src/proxy/http/request';
import { formatGrpcTimeout, parseGrpcTimeout } from '../../../src/proxy/http/layers/timeout';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const NAMES = ['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-connection', 'content-type', 'grpc-timeout', '__proto__', 'constructor', 'toString', 'x-a'];
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization'];

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const timeout = parseGrpcTimeout(input.bool() ? undefined : input.string(12));
  if (timeout !== null) {
    check(Number.isFinite(timeout) && timeout >= 0, `grpc-timeout parsed to ${timeout}`);
    const again = parseGrpcTimeout(formatGrpcTimeout(timeout));
    check(again !== null && again >= timeout, `formatGrpcTimeout(${timeout}) parses back to ${again}`);
  }
  const raw: (Buffer | string)[] = [];
  while (input.remaining > 0 && raw.length < 64) {
    raw.push(input.bool() ? input.pick(NAMES) : input.string(16));
    raw.push(input.string(48));
  }
  const h = fromRawPairs(raw);
  let values = 0;
  for (const name of Object.keys(h)) {
    check(name === name.toLowerCase(), `name ${JSON.stringify(name)} not lower case`);
    const v = h[name];
    check(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')), () => `value of ${JSON.stringify(name)} is ${String(v)}`);
    values += Array.isArray(v) ? v.length : 1;
  }
  const proto = Object.getPrototypeOf(h) as unknown;
  check(proto === null || proto === Object.prototype, 'the header object has a replaced prototype');
  check(values === Math.floor(raw.length / 2), `${raw.length / 2} pairs became ${values} values`);
  for (const name of NAMES) {
    const v = headerValue(h, name);
    check(v === undefined || Object.hasOwn(h, name), `headerValue(${name}) read an inherited member`);
  }
  isGrpc(h);
  const keep = input.bool();
  const named = [h.connection].flat().filter((x): x is string => typeof x === 'string').flatMap((v) => v.split(',').map((n) => n.trim().toLowerCase()).filter(Boolean));
  const copy: Headers = Object.assign(Object.create(null) as Headers, h);
  stripHopByHop(copy, keep);
  for (const n of [...HOP, ...named]) {
    if (n === 'te' && keep && copy.te === 'trailers') continue;
    check(copy[n] === undefined, `${n} left after stripHopByHop`);
  }
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 2048,
  dict: ['trailers', 'close', 'keep-alive, te', 'application/grpc', '99999999H', '1n', 'S', 'm', 'u', 'M'],
  run,
};
