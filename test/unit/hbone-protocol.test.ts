import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import type { CertBundle } from '../../src/identity/types';
import { formatAuthority, parseAuthority, poolKey, spiffeIdOf, uriSans } from '../../src/proxy/hbone';
import { refusalFrames } from '../../src/proxy/hbone/protocol';

describe('HBONE authority', () => {
  it('formats IPv4 plainly and IPv6 in brackets', () => {
    assert.equal(formatAuthority({ ip: '10.0.0.1', port: 80 }), '10.0.0.1:80');
    assert.equal(formatAuthority({ ip: 'fd00::1', port: 8080 }), '[fd00::1]:8080');
  });

  it('parses IP literals with ports and refuses everything else', () => {
    assert.deepEqual(parseAuthority('10.0.0.1:80'), { ip: '10.0.0.1', port: 80 });
    assert.deepEqual(parseAuthority('[fd00::1]:8080'), { ip: 'fd00::1', port: 8080 });
    for (const bad of [undefined, '', 'example.com:80', '10.0.0.1', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.256:80', 'fd00::1:80', '[10.0.0.1]:80', '[fe80::1%eth0]:80', ' 10.0.0.1:80']) {
      assert.equal(parseAuthority(bad), null, String(bad));
    }
  });
});

describe('HBONE peer identity', () => {
  it('reads URI SANs, including quoted ones, and ignores other kinds', () => {
    assert.deepEqual(uriSans('DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:10.0.0.1'), ['spiffe://td/ns/a/sa/b']);
    assert.deepEqual(uriSans('URI:"spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/x/sa/y"'), ['spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/x/sa/y']);
    assert.deepEqual(uriSans(undefined), []);
  });

  it('wants exactly one spiffe:// URI', () => {
    assert.deepEqual(spiffeIdOf({ subjectaltname: 'URI:spiffe://td/ns/a/sa/b, URI:https://x' }), { ok: true, id: 'spiffe://td/ns/a/sa/b' });
    assert.equal(spiffeIdOf({ subjectaltname: 'DNS:x' }).ok, false);
    assert.match((spiffeIdOf({ subjectaltname: 'URI:spiffe://a/ns/a/sa/a, URI:spiffe://a/ns/b/sa/b' }) as { reason: string }).reason, /2 SPIFFE URI SANs/);
    assert.match((spiffeIdOf(null) as { reason: string }).reason, /no certificate/);
  });
});

describe('HBONE refusal frames', () => {
  it('are an empty SETTINGS then GOAWAY(INADEQUATE_SECURITY) carrying the reason', () => {
    const b = refusalFrames('certificate expired');
    assert.deepEqual([...b.subarray(0, 9)], [0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const g = b.subarray(9);
    assert.equal(g.readUIntBE(0, 3), 8 + 19);
    assert.equal(g[3], 7);
    assert.equal(g.readUInt32BE(5), 0);
    assert.equal(g.readUInt32BE(9), 0);
    assert.equal(g.readUInt32BE(13), http2.constants.NGHTTP2_INADEQUATE_SECURITY);
    assert.equal(g.subarray(17).toString(), 'certificate expired');
  });
});

describe('HBONE pool key', () => {
  it('changes with the source certificate serial, the pod, the destination identity and address', () => {
    const source = { spiffeId: 'spiffe://td/ns/a/sa/c', serial: '01' } as CertBundle;
    const base = { sourcePod: 'uid-1', source, expectedServerId: 'spiffe://td/ns/a/sa/s', address: { ip: '10.0.0.2', port: 15008 } };
    const keys = new Set([
      poolKey(base),
      poolKey({ ...base, source: { ...source, serial: '02' } }),
      poolKey({ ...base, sourcePod: 'uid-2' }),
      poolKey({ ...base, expectedServerId: 'spiffe://td/ns/a/sa/t' }),
      poolKey({ ...base, address: { ip: '10.0.0.3', port: 15008 } }),
    ]);
    assert.equal(keys.size, 5);
  });
});
