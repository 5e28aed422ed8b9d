// Unit: client-first protocol detection (sniff) on whole and split inputs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sniff } from '../../src/proxy/http/detect';

test('request lines, the HTTP/2 preface, and what is neither', () => {
  assert.equal(sniff(Buffer.from('GET / HTTP/1.1\r\n')), 'http1');
  assert.equal(sniff(Buffer.from('GET / HTTP/1.')), 'more');
  assert.equal(sniff(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'http2');
  assert.equal(sniff(Buffer.from('PRI * HTTP/2')), 'more');
  assert.equal(sniff(Buffer.from('SSH-2.0-OpenSSH\r\n')), 'tcp');
  assert.equal(sniff(Buffer.from([0x16, 0x03, 0x01])), 'tcp');
});

test('a request line past 8 KiB is TCP whether it arrives whole or split (fuzz: http-sniff)', () => {
  // From the fuzzer: the first 9,288 bytes (no newline yet) said tcp, all 10,789 (line complete) said http1.
  const line = Buffer.from(`R ${'a'.repeat(10774)}PT HTTP/1.0\nS`, 'latin1');
  assert.equal(sniff(line.subarray(0, 9288)), 'tcp');
  assert.equal(sniff(line), 'tcp');
  const long = Buffer.from(`GET /${'x'.repeat(8200)} HTTP/1.1\r\n`);
  assert.equal(sniff(long), 'tcp');
  assert.equal(sniff(long.subarray(0, 8192)), 'tcp');
  const fits = Buffer.from(`GET /${'x'.repeat(8000)} HTTP/1.1\r\n`);
  assert.equal(sniff(fits), 'http1');
});
