import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { HpackDecoder, HpackEncoder, HpackError } from '../../src/proxy/hbone/h2/hpack';
import { HUFFMAN_CODES, HUFFMAN_EOS, HUFFMAN_LENGTHS, huffmanDecode } from '../../src/proxy/hbone/h2/huffman';

/** Bytes from the RFC's hex dumps ("8286 8441 ..."). */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** Reference Huffman encoder, bit by bit, padded with the most significant bits of EOS. */
function huffmanEncode(octets: Uint8Array): Buffer {
  let bits = '';
  for (const o of octets) bits += HUFFMAN_CODES[o].toString(2).padStart(HUFFMAN_LENGTHS[o], '0');
  bits += '1'.repeat((8 - (bits.length % 8)) % 8);
  const out = Buffer.alloc(bits.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  return out;
}

function huff(b: Buffer): string {
  return huffmanDecode(b, 0, b.length);
}

/** Deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('HPACK Huffman code', () => {
  it('is a complete prefix code: the Kraft sum over all 257 symbols is exactly 1', () => {
    assert.equal(HUFFMAN_CODES.length, 257);
    assert.equal(HUFFMAN_LENGTHS.length, 257);
    // Integer form of sum(2^-len) == 1; the longest code is 30 bits.
    let sum = 0;
    for (const len of HUFFMAN_LENGTHS) {
      assert.ok(len >= 5 && len <= 30);
      sum += 2 ** (30 - len);
    }
    assert.equal(sum, 2 ** 30);
    for (let s = 0; s < 257; s++) assert.ok(HUFFMAN_CODES[s] < 2 ** HUFFMAN_LENGTHS[s], `symbol ${s}`);
    assert.equal(HUFFMAN_CODES[HUFFMAN_EOS], 0x3fffffff);
    assert.equal(HUFFMAN_LENGTHS[HUFFMAN_EOS], 30);
  });

  it('decodes the RFC 7541 Appendix C strings', () => {
    const cases: Array<[string, string]> = [
      ['f1e3 c2e5 f23a 6ba0 ab90 f4ff', 'www.example.com'],
      ['a8eb 1064 9cbf', 'no-cache'],
      ['25a8 49e9 5ba9 7d7f', 'custom-key'],
      ['25a8 49e9 5bb8 e8b4 bf', 'custom-value'],
      ['6402', '302'],
      ['aec3 771a 4b', 'private'],
      ['d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3', 'https://www.example.com'],
      ['640e ff', '307'],
      ['9bd9 ab', 'gzip'],
      [
        '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
        'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
      ],
    ];
    for (const [bytes, text] of cases) assert.equal(huff(hex(bytes)), text);
    assert.equal(huffmanDecode(Buffer.from('xx'), 1, 1), '');
  });

  it('round-trips every octet, alone and in random strings', () => {
    for (let o = 0; o < 256; o++) {
      assert.equal(huff(huffmanEncode(Uint8Array.of(o))), String.fromCharCode(o), `octet ${o}`);
    }
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal(huff(huffmanEncode(all)), Buffer.from(all).toString('latin1'));
    const rnd = prng(7541);
    for (let n = 0; n < 200; n++) {
      const s = Uint8Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256));
      assert.equal(huff(huffmanEncode(s)), Buffer.from(s).toString('latin1'));
    }
  });

  it('decodes from the middle of a buffer', () => {
    const enc = huffmanEncode(Buffer.from('10.0.0.1:15008'));
    const buf = Buffer.concat([Buffer.from([0xde, 0xad]), enc, Buffer.from([0x00])]);
    assert.equal(huffmanDecode(buf, 2, 2 + enc.length), '10.0.0.1:15008');
  });

  it('rejects EOS in the data, padding over 7 bits, and padding that is not all ones', () => {
    // EOS (30 ones) followed by two padding ones.
    assert.throws(() => huff(hex('ffff ffff')), HpackError);
    // EOS after a symbol: 'a' (00011) + 30 ones + 5 padding ones.
    assert.throws(() => huff(huffmanEncodeBits('00011' + '1'.repeat(35))), HpackError);
    // 8 padding bits alone, and 'a' followed by 3 + 8 padding ones.
    assert.throws(() => huff(hex('ff')), HpackError);
    assert.throws(() => huff(hex('1f ff')), HpackError);
    // 'a' then padding 000 (not a prefix of EOS), and 'a' then 110.
    assert.throws(() => huff(hex('18')), HpackError);
    assert.throws(() => huff(hex('1e')), HpackError);
    // Exactly 7 padding ones is fine: '=' (100000) 'A' (100001) 'a' (00011) then 7 ones.
    assert.equal(huff(huffmanEncodeBits('100000' + '100001' + '00011' + '1111111')), '=Aa');
  });
});

/** Packs a '0'/'1' string (a multiple of 8 long) into octets. */
function huffmanEncodeBits(bits: string): Buffer {
  assert.equal(bits.length % 8, 0);
  return Buffer.from(Array.from({ length: bits.length / 8 }, (_, i) => parseInt(bits.slice(i * 8, i * 8 + 8), 2)));
}

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2 single representations', () => {
    let d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), {
      fields: [['custom-key', 'custom-header']],
      oversize: false,
    });
    assert.deepEqual(d.tableEntries(), [['custom-key', 'custom-header']]);
    assert.equal(d.tableSize, 55);

    d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('040c 2f73 616d 706c 652f 7061 7468')).fields, [[':path', '/sample/path']]);
    assert.equal(d.tableSize, 0);

    d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')).fields, [['password', 'secret']]);
    assert.equal(d.tableSize, 0);

    d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('82')).fields, [[':method', 'GET']]);
    assert.equal(d.tableSize, 0);
  });

  const requests = {
    plain: [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ],
    huffman: [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ],
  };
  for (const [kind, blocks] of Object.entries(requests)) {
    it(`C.${kind === 'plain' ? 3 : 4} requests ${kind === 'plain' ? 'without' : 'with'} Huffman, one decoder for all three`, () => {
      const d = new HpackDecoder();
      assert.deepEqual(d.decode(hex(blocks[0])).fields, [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
      ]);
      assert.deepEqual(d.tableEntries(), [[':authority', 'www.example.com']]);
      assert.equal(d.tableSize, 57);

      assert.deepEqual(d.decode(hex(blocks[1])).fields, [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
        ['cache-control', 'no-cache'],
      ]);
      assert.deepEqual(d.tableEntries(), [
        ['cache-control', 'no-cache'],
        [':authority', 'www.example.com'],
      ]);
      assert.equal(d.tableSize, 110);

      assert.deepEqual(d.decode(hex(blocks[2])).fields, [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':path', '/index.html'],
        [':authority', 'www.example.com'],
        ['custom-key', 'custom-value'],
      ]);
      assert.deepEqual(d.tableEntries(), [
        ['custom-key', 'custom-value'],
        ['cache-control', 'no-cache'],
        [':authority', 'www.example.com'],
      ]);
      assert.equal(d.tableSize, 164);
    });
  }

  const responses = {
    plain: [
      '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 ' +
        '7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '4803 3330 37c1 c0bf',
      '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 ' +
        '444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    ],
    huffman: [
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 ' +
        'e9ae 82ae 43d3',
      '4883 640e ffc1 c0bf',
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b ' +
        '3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  };
  const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
  const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
  const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
  for (const [kind, blocks] of Object.entries(responses)) {
    it(`C.${kind === 'plain' ? 5 : 6} responses ${kind === 'plain' ? 'without' : 'with'} Huffman, 256-octet table with evictions`, () => {
      const d = new HpackDecoder({ maxTableSize: 256 });
      assert.deepEqual(d.decode(hex(blocks[0])).fields, [
        [':status', '302'],
        ['cache-control', 'private'],
        ['date', date1],
        ['location', 'https://www.example.com'],
      ]);
      assert.deepEqual(d.tableEntries(), [
        ['location', 'https://www.example.com'],
        ['date', date1],
        ['cache-control', 'private'],
        [':status', '302'],
      ]);
      assert.equal(d.tableSize, 222);

      // (":status", "302") is evicted to make room for (":status", "307").
      assert.deepEqual(d.decode(hex(blocks[1])).fields, [
        [':status', '307'],
        ['cache-control', 'private'],
        ['date', date1],
        ['location', 'https://www.example.com'],
      ]);
      assert.deepEqual(d.tableEntries(), [
        [':status', '307'],
        ['location', 'https://www.example.com'],
        ['date', date1],
        ['cache-control', 'private'],
      ]);
      assert.equal(d.tableSize, 222);

      assert.deepEqual(d.decode(hex(blocks[2])).fields, [
        [':status', '200'],
        ['cache-control', 'private'],
        ['date', date2],
        ['location', 'https://www.example.com'],
        ['content-encoding', 'gzip'],
        ['set-cookie', cookie],
      ]);
      assert.deepEqual(d.tableEntries(), [
        ['set-cookie', cookie],
        ['content-encoding', 'gzip'],
        ['date', date2],
      ]);
      assert.equal(d.tableSize, 215);
    });
  }
});

describe('HPACK decoder: table size and limits', () => {
  it('applies size updates at the start of a block, up to our SETTINGS_HEADER_TABLE_SIZE', () => {
    const d = new HpackDecoder();
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.equal(d.tableSize, 55);
    // Two updates in a row (shrink to 0, then back to 4096 = 31 + 97 + 31 * 128) empty the table.
    assert.deepEqual(d.decode(hex('20 3fe1 1f 82')).fields, [[':method', 'GET']]);
    assert.equal(d.tableSize, 0);
    assert.throws(() => d.decode(hex('be')), HpackError);
    // An entry larger than the whole table empties it and is not added.
    d.decode(hex('3f11 4003 6162 6303 7878 78')); // limit 48: 'abc: xxx' is 38 octets
    assert.deepEqual(d.tableEntries(), [['abc', 'xxx']]);
    d.decode(hex('4003 6465 6610 ' + '79'.repeat(16))); // 3 + 16 + 32 = 51 > 48
    assert.deepEqual(d.tableEntries(), []);
    assert.equal(d.tableSize, 0);
  });

  it('a zero-size table is allowed and takes no entries', () => {
    const d = new HpackDecoder({ maxTableSize: 0 });
    assert.deepEqual(d.decode(hex('4003 6162 6303 7878 78')).fields, [['abc', 'xxx']]);
    assert.equal(d.tableSize, 0);
    assert.throws(() => d.decode(hex('be')), HpackError);
  });

  it('keeps order and indexes while the ring wraps and then grows', () => {
    // Each 'k000'..'k349' with an empty value is a 36-octet entry, added with incremental indexing.
    const add = (from: number, to: number): Buffer =>
      Buffer.concat(Array.from({ length: to - from }, (_, i) => Buffer.from([0x40, 4, ...Buffer.from(`k${String(from + i).padStart(3, '0')}`), 0])));
    const d = new HpackDecoder({ maxTableSize: 8192 });
    // Limit 4096: 113 entries fit, so 150 additions evict and wrap the initial ring.
    d.decode(Buffer.concat([hex('3fe1 1f'), add(0, 150)]));
    assert.equal(d.tableEntries().length, 113);
    assert.deepEqual(d.tableEntries()[0], ['k149', '']);
    // Back to 8192 (3f e1 3f = 31 + 97 + 63 * 128): 227 entries fit, past the ring's first size.
    d.decode(Buffer.concat([hex('3fe1 3f'), add(150, 350)]));
    const names = d.tableEntries().map(([n]) => n);
    assert.equal(names.length, 227);
    assert.deepEqual(names, Array.from({ length: 227 }, (_, i) => `k${String(349 - i).padStart(3, '0')}`));
    assert.equal(d.tableSize, 227 * 36);
    assert.deepEqual(d.decode(hex('be')).fields, [['k349', '']]);
    // Index 62 + 226 = 288 is the oldest: 1xxxxxxx with 127 + 161.
    assert.deepEqual(d.decode(hex('ff a1 01')).fields, [['k123', '']]);
    assert.throws(() => d.decode(hex('ff a2 01')), HpackError);
  });

  it('drops an oversize header list but keeps the table in sync with the peer', () => {
    const d = new HpackDecoder({ maxHeaderListSize: 100 });
    // :method GET (42) + :path / (38) + x-a: b (36, indexed) = 116 > 100.
    assert.deepEqual(d.decode(hex('82 84 4003 782d 6101 62')), { fields: [], oversize: true });
    assert.deepEqual(d.tableEntries(), [['x-a', 'b']]);
    assert.deepEqual(d.decode(hex('be 82')), {
      fields: [
        ['x-a', 'b'],
        [':method', 'GET'],
      ],
      oversize: false,
    });
  });
});

describe('HPACK decoder: rejects malformed blocks with HpackError', () => {
  // [case, block, what the message must name]: the reason matters, not only the class, so a block
  // rejected for some other flaw does not pass for the one under test.
  const bad: Array<[string, string, RegExp]> = [
    ['indexed field with index 0', '80', /index 0/],
    ['indexed field past the static table, dynamic table empty', 'be', /index 62 is past the end/],
    ['literal with an indexed name past the table', '7f00 0161', /index 63 is past the end/],
    ['never-indexed literal with a name index past the table', '1f2f 0161', /index 62 is past the end/],
    ['size update above the limit (4097)', '3fe2 1f', /4097 exceeds/],
    ['size update after a field', '82 20', /size update after a header field/],
    ['size update after a field, later in the block', '20 82 20', /size update after a header field/],
    ['integer prefix with no continuation octet', 'ff', /ends inside an integer/],
    ['integer ending on a continuation octet', 'ff80', /ends inside an integer/],
    // A size update to 31, padded with zero continuation octets: valid but for its 6 octets.
    ['integer of 6 continuation octets', '3f80 8080 8080 00', /longer than 5 continuation octets/],
    ['integer above 2^31 - 1', '3f80 8080 8008', /larger than 2\^31 - 1/],
    ['string length past the end', '400a 6375', /10 octets runs past the end/],
    ['literal missing its value', '4003 6162 63', /ends before an integer/],
    ['string length integer truncated', '40ff', /ends inside an integer/],
    ['Huffman string with EOS', '4084 ffff ffff 00', /EOS/],
    ['Huffman string with bad padding', '0081 1801 61', /padding/],
  ];
  for (const [what, bytes, reason] of bad) {
    it(what, () => {
      assert.throws(
        () => new HpackDecoder().decode(hex(bytes)),
        (err: unknown) => err instanceof HpackError && err.code === 'NM_HBONE_HPACK' && reason.test(err.message),
      );
    });
  }

  it('size update above a configured limit', () => {
    assert.throws(() => new HpackDecoder({ maxTableSize: 256 }).decode(hex('3fe2 01')), HpackError); // 257
    assert.doesNotThrow(() => new HpackDecoder({ maxTableSize: 256 }).decode(hex('3fe1 01'))); // 256
  });

  it('index one past the dynamic table', () => {
    const d = new HpackDecoder();
    d.decode(hex('4003 6162 6303 7878 78'));
    assert.deepEqual(d.decode(hex('be')).fields, [['abc', 'xxx']]);
    assert.throws(() => d.decode(hex('bf')), HpackError);
  });
});

describe('HPACK encoder', () => {
  it('sends static matches as indexed fields and everything else as literals without indexing', () => {
    const e = new HpackEncoder();
    assert.deepEqual([...e.encode([[':status', '200']])], [0x88]);
    assert.deepEqual([...e.encode([[':method', 'GET']])], [0x82]);
    // :method is static index 2: 0000 0010, then the raw value.
    assert.deepEqual(e.encode([[':method', 'CONNECT']]), Buffer.from([0x02, 0x07, ...Buffer.from('CONNECT')]));
    // :status is index 8; a 4-bit prefix holds up to 14. www-authenticate (61) needs a continuation octet.
    assert.deepEqual(e.encode([[':status', '503']]), Buffer.from([0x08, 0x03, ...Buffer.from('503')]));
    assert.deepEqual(e.encode([['accept-charset', 'x']]), Buffer.from([0x0f, 0x00, 0x01, 0x78]));
    assert.deepEqual(e.encode([['www-authenticate', 'x']]), Buffer.from([0x0f, 61 - 15, 0x01, 0x78]));
    assert.deepEqual(e.encode([['x-a', 'b']]), hex('0003 782d 6101 62'));
    assert.equal(e.encode([]).length, 0);
  });

  it('round-trips through our decoder without touching its table', () => {
    const e = new HpackEncoder();
    const d = new HpackDecoder();
    const long = 'v'.repeat(127) + 'w'.repeat(20000);
    const fields: Array<[string, string]> = [
      [':method', 'CONNECT'],
      [':authority', '10.244.1.7:8080'],
      [':status', '200'],
      ['accept-encoding', 'gzip, deflate'],
      ['user-agent', ''],
      ['x-empty', ''],
      ['x-latin1', 'caf\u00e9 \u00ff\u0080\u0001'],
      ['x-127', 'y'.repeat(127)],
      ['x-long', long],
      ['n'.repeat(300), 'name longer than one prefix octet'],
    ];
    for (let i = 0; i < 3; i++) assert.deepEqual(d.decode(e.encode(fields)), { fields, oversize: false });
    assert.equal(d.tableSize, 0);
  });
});

// Interop with a real peer: node:http2 (nghttp2) as the encoder for our decoder, and as the decoder for
// our encoder. Loopback only; every server and socket is closed in `after` even when a test fails.
describe('HPACK interop with node:http2', () => {
  const cleanups: Array<() => void> = [];
  after(() => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch {
        // Closing something already closed: nothing left to release.
      }
    }
  });

  const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const listen = (server: net.Server): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });

  /** Splits a byte stream into HTTP/2 frames. */
  class FrameReader {
    private pending = Buffer.alloc(0);
    constructor(private readonly onFrame: (type: number, flags: number, stream: number, payload: Buffer) => void) {}
    push(chunk: Buffer): void {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 9) {
        const len = this.pending.readUIntBE(0, 3);
        if (this.pending.length < 9 + len) break;
        const f = this.pending;
        this.onFrame(f[3], f[4], f.readUInt32BE(5) & 0x7fffffff, f.subarray(9, 9 + len));
        this.pending = f.subarray(9 + len);
      }
    }
  }

  it('decodes exactly the headers a node:http2 client sends (Huffman, dynamic table, CONTINUATION, padding, priority)', { timeout: 15000 }, async () => {
    const rnd = prng(1234);
    const word = (n: number): string => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789-_./ABCXYZ'[Math.floor(rnd() * 46)]).join('');
    const requests: Array<Array<[string, string]>> = [];
    for (let i = 0; i < 6; i++) {
      const fields: Array<[string, string]> = [
        [':method', i % 2 ? 'POST' : 'GET'],
        [':authority', 'backend.ns.svc.cluster.local:8080'],
        [':scheme', 'http'],
        [':path', `/api/v1/items/${i}?q=${word(8)}`],
        ['user-agent', 'nodemesh-interop/1.0'],
        ['accept-encoding', 'gzip, deflate'],
        ['x-request-id', word(32)],
        ['authorization', `Bearer ${word(40)}`],
        ['x-latin1', `caf\u00e9-${i}`],
        ['x-multi', 'one'],
        ['x-multi', `two-${i % 2}`],
      ];
      for (let k = 0; k < 12; k++) fields.push([`x-custom-${k}`, k % 3 === 0 ? `changing-${word(6)}` : `stable-value-${k}`]);
      if (i === 3) fields.push(['x-big', word(30000)]);
      requests.push(fields);
    }

    const blocks: Buffer[] = [];
    const seen: { continuation: boolean; padded: boolean; priority: boolean } = { continuation: false, padded: false, priority: false };
    const server = net.createServer();
    cleanups.push(() => server.close());
    const done = new Promise<void>((resolve, reject) => {
      server.on('connection', (sock) => {
        cleanups.push(() => sock.destroy());
        sock.on('error', reject);
        let gotPreface = false;
        let pre = Buffer.alloc(0);
        let block: Buffer[] = [];
        const reader = new FrameReader((type, flags, _stream, payload) => {
          if (type === 4 && (flags & 1) === 0) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
          if (type !== 1 && type !== 9) return;
          let p = payload;
          if (type === 1) {
            if (flags & 0x08) {
              seen.padded = true;
              p = p.subarray(1, p.length - p[0]);
            }
            if (flags & 0x20) {
              seen.priority = true;
              p = p.subarray(5);
            }
          } else {
            seen.continuation = true;
          }
          block.push(p);
          if (flags & 0x04) {
            blocks.push(Buffer.concat(block));
            block = [];
            if (blocks.length === requests.length) resolve();
          }
        });
        sock.on('data', (chunk: Buffer) => {
          if (!gotPreface) {
            pre = Buffer.concat([pre, chunk]);
            if (pre.length < PREFACE.length) return;
            if (!pre.subarray(0, PREFACE.length).equals(PREFACE)) return reject(new Error('bad client preface'));
            gotPreface = true;
            chunk = pre.subarray(PREFACE.length);
          }
          reader.push(chunk);
        });
        sock.write(frame(4, 0, 0, Buffer.alloc(0)));
      });
    });
    const port = await listen(server);

    const client = http2.connect(`http://127.0.0.1:${port}`, { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
    cleanups.push(() => client.destroy());
    client.on('error', () => {
      // The raw server never answers; the session is torn down by the cleanup.
    });
    requests.forEach((fields, i) => {
      const headers: http2.OutgoingHttpHeaders = {};
      for (const [name, value] of fields) {
        const prev = headers[name];
        headers[name] = prev === undefined ? value : ([] as string[]).concat(prev as string | string[], value);
      }
      // A weight makes Node 20's nghttp2 set the PRIORITY flag on that HEADERS frame.
      const options = i === 2 ? ({ endStream: true, weight: 42 } as http2.ClientSessionRequestOptions) : { endStream: true };
      const req = client.request(headers, options);
      req.on('error', () => {
        // As above.
      });
    });
    await done;

    const d = new HpackDecoder();
    const decoded = blocks.map((b) => d.decode(b));
    for (let i = 0; i < requests.length; i++) {
      assert.equal(decoded[i].oversize, false);
      assert.deepEqual(decoded[i].fields, requests[i], `request ${i}`);
    }
    assert.ok(seen.continuation, 'the 30 kB header should have needed a CONTINUATION frame');
    assert.ok(seen.padded, 'PADDING_STRATEGY_MAX should have padded a HEADERS frame');
    assert.ok(seen.priority, 'the weighted request should have carried the PRIORITY flag');
    // Huffman: the 30 000-char value went out in fewer octets than it has chars.
    assert.ok(blocks[3].length < 27000, `block 3 is ${blocks[3].length} octets`);
    // Later blocks must be much smaller than the first: evidence nghttp2 indexed fields we then resolved.
    assert.ok(blocks[5].length < blocks[0].length / 2, `block sizes ${blocks.map((b) => b.length).join(' ')}`);
    assert.ok(d.tableSize > 0);
  });

  it('a node:http2 server sees exactly the headers our encoder sends', { timeout: 15000 }, async () => {
    const requests: Array<Array<[string, string]>> = [
      [
        [':method', 'CONNECT'],
        [':authority', '10.244.1.7:8080'],
      ],
      [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':path', '/'],
        [':authority', 'www.example.com'],
        ['accept-encoding', 'gzip, deflate'],
        ['user-agent', 'nodemesh'],
        ['x-latin1', 'caf\u00e9 \u00ff'],
        ['x-empty', ''],
        ['x-long', 'z'.repeat(5000)],
      ],
      [
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', '/index.html'],
        [':authority', 'a.b:1'],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
        ['x-dup', '1'],
        ['x-dup', '2'],
      ],
    ];

    const got: string[][] = [];
    const server = http2.createServer();
    cleanups.push(() => server.close());
    server.on('session', (session) => cleanups.push(() => session.destroy()));
    let gotAll: () => void = () => undefined;
    const allSeen = new Promise<void>((resolve) => (gotAll = resolve));
    // Node passes the fields as received, in order and with duplicates, as a fourth argument that
    // @types/node does not declare.
    const onStream = (stream: http2.ServerHttp2Stream, _headers: unknown, _flags: unknown, rawHeaders: string[]): void => {
      got.push(rawHeaders);
      stream.on('error', () => {
        // The raw client may close before the answer is flushed.
      });
      stream.respond({ ':status': 200 }, { endStream: true });
      if (got.length === requests.length) gotAll();
    };
    server.on('stream', onStream as unknown as (stream: http2.ServerHttp2Stream) => void);
    const port = await listen(server as unknown as net.Server);

    const sock = net.connect(port, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    const failed = new Promise<never>((_resolve, reject) => {
      sock.on('error', reject);
      const reader = new FrameReader((type, flags, _stream, payload) => {
        if (type === 4 && (flags & 1) === 0) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
        if (type === 7) reject(new Error(`node:http2 sent GOAWAY with error code ${payload.readUInt32BE(4)}`));
        if (type === 3) reject(new Error(`node:http2 reset a stream with error code ${payload.readUInt32BE(0)}`));
      });
      sock.on('data', (chunk: Buffer) => reader.push(chunk));
    });
    const enc = new HpackEncoder();
    const frames = [PREFACE, frame(4, 0, 0, Buffer.alloc(0))];
    requests.forEach((fields, i) => frames.push(frame(1, 0x04 | 0x01, 2 * i + 1, enc.encode(fields))));
    sock.write(Buffer.concat(frames));

    failed.catch(() => undefined);
    await Promise.race([allSeen, failed]);
    assert.deepEqual(
      got,
      requests.map((fields) => fields.flat()),
    );
  });
});
