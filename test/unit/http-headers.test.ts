// Unit: the L7 header helpers on field names that are also names of Object.prototype members.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromRawPairs, headerValue, stripHopByHop } from '../../src/proxy/http/headers';

test('fields named __proto__ or constructor are ordinary fields (fuzz: http-headers)', () => {
  // From the fuzzer: on an empty header object, headerValue('__proto__') returned Object.prototype as the value.
  assert.equal(headerValue({}, '__proto__'), undefined);
  assert.equal(headerValue({}, 'constructor'), undefined);
  assert.equal(headerValue({}, 'toString'), undefined);
  const h = fromRawPairs([Buffer.from('__proto__'), Buffer.from('a'), Buffer.from('Constructor'), Buffer.from('b'), Buffer.from('constructor'), Buffer.from('c'), Buffer.from('X-A'), Buffer.from('1')]);
  assert.equal(Object.getPrototypeOf(h), null);
  assert.deepEqual(Object.keys(h).sort(), ['__proto__', 'constructor', 'x-a']);
  assert.equal(headerValue(h, '__proto__'), 'a');
  assert.deepEqual(h.constructor, ['b', 'c']);
  assert.equal(headerValue(h, 'constructor'), 'b, c');
  stripHopByHop(h, false);
  assert.equal(headerValue(h, 'x-a'), '1');
});
