// The HTTP/2 session's rule tables, without sockets: header well-formedness, closed-stream memory, rate windows, budgets.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClosedStreams, Closure } from '../../src/proxy/hbone/h2/closed-streams';
import { contentLength, validateRequest, validateResponse, validateTrailers } from '../../src/proxy/hbone/h2/headers';
import { PeerBudget } from '../../src/proxy/hbone/h2/peer-budget';
import { RateWindow } from '../../src/proxy/hbone/h2/rate-window';

const CONNECT: Array<[string, string]> = [
  [':method', 'CONNECT'],
  [':authority', '10.0.0.1:80'],
];

describe('header lists (RFC 9113 §8.2, §8.3)', () => {
  it('takes every name character §8.2.1 allows and nothing else', () => {
    assert.equal(typeof validateRequest([...CONNECT, ["x-a!#$%&'*+-.^_`|~09z", 'v']]), 'object');
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const bad = c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || c === 0x3a;
      const r = validateRequest([...CONNECT, [`x${ch}y`, 'v']]);
      assert.equal(typeof r === 'string', bad, `0x${c.toString(16)} in a name`);
    }
    assert.match(validateRequest([...CONNECT, [':', 'v']]) as string, /forbids/);
  });

  it('refuses values with NUL, CR, LF anywhere or whitespace at either end; keeps inner whitespace', () => {
    for (const v of ['a\0b', 'a\rb', 'a\nb', ' a', 'a ', '\ta', 'a\t']) assert.equal(typeof validateRequest([...CONNECT, ['x', v]]), 'string', JSON.stringify(v));
    assert.equal(typeof validateRequest([...CONNECT, ['x', 'a b\tc']]), 'object');
    assert.equal(typeof validateRequest([...CONNECT, ['x', '']]), 'object');
  });

  it('refuses an empty :path and a malformed content-length', () => {
    const get: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'https'], [':authority', 'a'], [':path', '']];
    assert.equal(validateRequest(get), 'empty :path');
    get[3] = [':path', '/'];
    assert.equal(typeof validateRequest(get), 'object');
    assert.equal(validateRequest([...get, ['content-length', '-1']]), 'malformed content-length');
    assert.equal(validateResponse([[':status', '200'], ['content-length', '1'], ['content-length', '2']]), 'malformed content-length');
  });

  it('reads content-length: none, one value, equal repeats', () => {
    assert.equal(contentLength({}), null);
    assert.equal(contentLength({ 'content-length': '42' }), 42);
    assert.equal(contentLength({ 'content-length': '7, 7' }), 7);
    assert.equal(contentLength({ 'content-length': '7, 8' }), undefined);
  });

  it('trailers hold regular fields only', () => {
    assert.equal(typeof validateTrailers([['x-sum', 'abc']]), 'object');
    assert.match(validateTrailers([[':status', '200']]) as string, /pseudo-header :status in trailers/);
    assert.equal(typeof validateTrailers([['connection', 'close']]), 'string');
  });
});

describe('closed-stream memory', () => {
  it('keeps the last N closures and forgets the oldest', () => {
    const c = new ClosedStreams(4);
    for (let id = 1; id <= 11; id += 2) c.add(id, id === 11 ? Closure.RESET_BY_PEER : Closure.ENDED);
    assert.equal(c.size, 4);
    assert.equal(c.get(1), undefined);
    assert.equal(c.get(3), undefined);
    assert.equal(c.get(5), Closure.ENDED);
    assert.equal(c.get(11), Closure.RESET_BY_PEER);
    c.add(11, Closure.RESET_BY_US);
    assert.equal(c.get(11), Closure.RESET_BY_US);
    assert.equal(c.size, 4);
  });
});

describe('rate windows and peer budgets', () => {
  it('allows N events a second, then refuses until the next second', () => {
    const w = new RateWindow(3);
    assert.deepEqual([w.hit(5000), w.hit(5100), w.hit(5200), w.hit(5300)], [true, true, true, false]);
    assert.equal(w.hit(6100), true);
  });

  it('wakes sessions waiting for credit once the peer holds less than its limit', () => {
    const b = new PeerBudget(100, 10);
    let woken = 0;
    b.add(150);
    assert.equal(b.over, true);
    b.onRelief(() => woken++);
    b.add(-20);
    assert.equal(woken, 0, 'still over');
    b.add(-40);
    assert.equal(woken, 1);
    b.add(-10);
    assert.equal(woken, 1, 'once');
  });
});
