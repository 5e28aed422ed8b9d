// Unit tests (loopback only) of `nodemesh sample http`: query controls, counted failures, bodies, h2c, trailers, /ws.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FailKeys } from '../../src/sample/fail-keys';
import { MAX_FAIL_KEY } from '../../src/sample/http-controls';
import { startSampleHttpServer, type SampleHttpServer } from '../../src/sample/http-server';
import { runWsClient } from '../../src/sample/websocket-client';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: Record<string, string>;
  raw: Buffer;
  json: Record<string, unknown> & { pod?: string; status?: number; code?: string; error?: string };
}

function request(port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; agent?: http.Agent | false } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let json = {};
        try {
          json = raw.length ? (JSON.parse(raw.toString()) as Record<string, unknown>) : {};
        } catch {
          // not JSON (/bytes)
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers as Record<string, string>, raw, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function h2request(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const req = s.request({ ':path': path });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: Record<string, string> = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t as Record<string, string>));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      s.close();
      const raw = Buffer.concat(chunks);
      resolve({ status: Number(headers[':status']), headers: headers as http.IncomingHttpHeaders, trailers, raw, json: JSON.parse(raw.toString()) as Answer['json'] });
    });
    req.on('error', reject);
  });
}

describe('sample http server', () => {
  let srv: SampleHttpServer;
  before(async () => {
    srv = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'svc', version: 'v9', pod: 'pod-1', maxFailKeys: 3 });
  });
  after(() => srv.close(0));

  it('answers with its identity, the request as seen, and x-served-by', async () => {
    const r = await request(srv.port, '/a/b?c=d', { headers: { 'x-test': '1' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-served-by'], 'pod-1');
    const b = r.json as { name: string; version: string; pod: string; path: string; method: string; headers: Record<string, string>; peer: { address: string; port: number }; status: number; httpVersion: string };
    assert.deepEqual([b.name, b.version, b.pod, b.path, b.method, b.status, b.httpVersion], ['svc', 'v9', 'pod-1', '/a/b?c=d', 'GET', 200, '1.1']);
    assert.equal(b.headers['x-test'], '1');
    assert.equal(b.peer.address, '127.0.0.1');
    assert.ok(b.peer.port > 0);
    assert.equal('requestBody' in b, false);
    const bytes = await request(srv.port, '/bytes/1000');
    assert.equal(bytes.raw.length, 1000);
    assert.equal(bytes.headers['x-served-by'], 'pod-1');
  });

  it('?status answers that status with the JSON report; 1xx and junk are 400 with a code', async () => {
    for (const code of [201, 404, 503, 599]) {
      const r = await request(srv.port, `/?status=${code}`);
      assert.equal(r.status, code);
      assert.equal(r.json.pod, 'pod-1');
      assert.equal(r.json.status, code);
      assert.equal(r.headers['x-served-by'], 'pod-1');
    }
    const empty = await request(srv.port, '/?status=204');
    assert.equal(empty.status, 204);
    assert.equal(empty.raw.length, 0);
    for (const q of ['status=100', 'status=101', 'status=600', 'status=abc', 'status=2e2', 'delay=60001', 'delay=-1', 'fail_status=99', 'fail_delay=60001', 'chunked=yes']) {
      const r = await request(srv.port, `/?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.code, 'NM_SAMPLE_BAD_QUERY', q);
      assert.match(r.json.error ?? '', new RegExp(q.split('=')[0] as string), q);
      assert.equal(r.json.pod, 'pod-1');
    }
    // Unknown parameters are left for routing tests to match on.
    assert.equal((await request(srv.port, '/?color=blue&status=202')).status, 202);
  });

  it('?delay answers no sooner than asked; 0 and 60000 are the bounds', async () => {
    const t0 = Date.now();
    const r = await request(srv.port, '/?delay=120');
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 100, 'answered before the delay');
    assert.equal((await request(srv.port, '/?delay=0')).status, 200);
  });

  it('?fail=N fails the first N requests of each x-fail-key, then succeeds', async () => {
    const seq = async (key: string, q: string, n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await request(srv.port, `/?${q}`, { headers: { 'x-fail-key': key } })).status);
      return out;
    };
    assert.deepEqual(await seq('k1', 'fail=2', 4), [500, 500, 200, 200]);
    // Another key counts on its own; fail_status replaces 500.
    assert.deepEqual(await seq('k2', 'fail=1&fail_status=503', 3), [503, 200, 200]);
    const r = await request(srv.port, '/?fail=1&status=201', { headers: { 'x-fail-key': 'k3' } });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json.fail, { key: 'k3', attempt: 1, failed: true });
    assert.equal(r.json.pod, 'pod-1');
    const later = await request(srv.port, '/?fail=1&status=201', { headers: { 'x-fail-key': 'k3' } });
    assert.equal(later.status, 201);
    assert.deepEqual(later.json.fail, { key: 'k3', attempt: 2, failed: false });
    // fail_delay: only the counted failures are slow.
    const timed = async (): Promise<[number, number]> => {
      const t0 = Date.now();
      const x = await request(srv.port, '/?fail=1&fail_delay=150', { headers: { 'x-fail-key': 'k4' } });
      return [x.status, Date.now() - t0];
    };
    const [s1, ms1] = await timed();
    const [s2] = await timed();
    assert.deepEqual([s1, s2], [500, 200]);
    assert.ok(ms1 >= 140, `failure answered after ${ms1} ms`);
    // fail_reset: the failure is a reset connection, the next request an answer.
    await assert.rejects(request(srv.port, '/?fail=1&fail_reset=1', { headers: { 'x-fail-key': 'k5' } }), /ECONNRESET|socket hang up/);
    assert.equal((await request(srv.port, '/?fail=1&fail_reset=1', { headers: { 'x-fail-key': 'k5' } })).status, 200);
  });

  it('?fail without a usable x-fail-key is a 400 that says what to add', async () => {
    const none = await request(srv.port, '/?fail=1');
    assert.equal(none.status, 400);
    assert.equal(none.json.code, 'NM_SAMPLE_BAD_HEADER');
    assert.match(none.json.error ?? '', /x-fail-key/);
    const long = await request(srv.port, '/?fail=1', { headers: { 'x-fail-key': 'k'.repeat(MAX_FAIL_KEY + 1) } });
    assert.equal(long.status, 400);
    assert.equal(long.json.code, 'NM_SAMPLE_BAD_HEADER');
  });

  it('fail keys are bounded: the least recently used key is forgotten and counts again', async () => {
    const hit = async (key: string): Promise<number> => (await request(srv.port, '/?fail=1', { headers: { 'x-fail-key': key } })).status;
    // maxFailKeys is 3 for this server; keys of earlier tests may be held, so start from fresh ones.
    assert.equal(await hit('lru-a'), 500);
    assert.equal(await hit('lru-b'), 500);
    assert.equal(await hit('lru-c'), 500);
    assert.equal(await hit('lru-a'), 200); // a is now the youngest; b the oldest
    assert.equal(await hit('lru-d'), 500); // evicts b
    assert.equal(srv.failKeys.size, 3);
    assert.equal(await hit('lru-a'), 200);
    assert.equal(await hit('lru-b'), 500); // forgotten: fails again
  });

  it('FailKeys stays within its bound whatever keys arrive', () => {
    const keys = new FailKeys(100);
    for (let i = 0; i < 10_000; i++) keys.hit(`key-${i}`);
    assert.equal(keys.size, 100);
    assert.equal(keys.hit('key-9999'), 2);
    assert.equal(keys.hit('key-0'), 1);
  });

  it('reports the length and sha256 of a request body, streamed', async () => {
    const body = Buffer.alloc(5_000_000, 7);
    const r = await request(srv.port, '/up', { method: 'PUT', body });
    assert.deepEqual(r.json.requestBody, { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    const emptyPost = await request(srv.port, '/up', { method: 'POST' });
    assert.deepEqual(emptyPost.json.requestBody, { bytes: 0, sha256: createHash('sha256').digest('hex') });
  });

  it('answers Expect: 100-continue with 100 before the body is sent', async () => {
    const got = await new Promise<{ continued: boolean; json: { requestBody: { bytes: number } } }>((resolve, reject) => {
      let continued = false;
      const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/', method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': '5' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ continued, json: JSON.parse(Buffer.concat(chunks).toString()) as { requestBody: { bytes: number } } }));
      });
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('error', reject);
    });
    assert.equal(got.continued, true);
    assert.equal(got.json.requestBody.bytes, 5);
  });

  it('?chunked=1 sends chunks without content-length; ?trailers=1 adds x-body-sha256 as a trailer', async () => {
    const c = await request(srv.port, '/?chunked=1');
    assert.equal(c.headers['transfer-encoding'], 'chunked');
    assert.equal(c.headers['content-length'], undefined);
    assert.equal(c.json.pod, 'pod-1');
    const t = await request(srv.port, '/?trailers=1', { headers: { te: 'trailers' } });
    assert.equal(t.headers['trailer'], 'x-body-sha256');
    assert.equal(t.trailers['x-body-sha256'], createHash('sha256').update(t.raw).digest('hex'));
  });

  it('serves h2c with prior knowledge on the same port, trailers included', async () => {
    const r = await h2request(srv.port, '/h2?trailers=1');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-served-by'], 'pod-1');
    assert.equal(r.json.httpVersion, '2.0');
    assert.equal(r.json.path, '/h2?trailers=1');
    assert.equal(r.trailers['x-body-sha256'], createHash('sha256').update(r.raw).digest('hex'));
    assert.equal((await h2request(srv.port, '/?status=418')).status, 418);
  });

  it('declines an h2c Upgrade and answers over HTTP/1.1', async () => {
    const r = await request(srv.port, '/up?x=1', { headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA' } });
    assert.equal(r.status, 200);
    assert.equal(r.json.path, '/up?x=1');
    assert.equal(r.headers['x-served-by'], 'pod-1');
  });

  it('/ws echoes text and binary WebSocket messages; the 101 says who answered', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`);
    const servedBy = new Promise<string | undefined>((r) => ws.once('upgrade', (res) => r(res.headers['x-served-by'] as string)));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const echoes: Array<{ data: string; binary: boolean }> = [];
    const got = new Promise<void>((r) =>
      ws.on('message', (d: Buffer, binary: boolean) => {
        echoes.push({ data: binary ? d.toString('hex') : d.toString(), binary });
        if (echoes.length === 2) r();
      }),
    );
    ws.send('hello');
    ws.send(Buffer.from([1, 2, 3]));
    await got;
    assert.equal(await servedBy, 'pod-1');
    assert.deepEqual(echoes, [
      { data: 'hello', binary: false },
      { data: '010203', binary: true },
    ]);
    ws.close(1000);
    await new Promise((r) => ws.once('close', r));
    const elsewhere = new WebSocket(`ws://127.0.0.1:${srv.port}/not-ws`);
    const status = await new Promise<number>((r) => elsewhere.once('unexpected-response', (_req, res) => r(res.statusCode ?? 0)).once('error', () => r(-1)));
    assert.equal(status, 404);
  });

  it('ws-client checks every echo and says who answered the upgrade', async () => {
    const text = await runWsClient({ url: `ws://127.0.0.1:${srv.port}/ws`, count: 5, timeoutMs: 10_000 });
    assert.deepEqual([text.ok, text.servedBy, text.sent, text.echoed, text.error], [true, 'pod-1', 5, 5, undefined]);
    const binary = await runWsClient({ url: `ws://127.0.0.1:${srv.port}/ws`, count: 2, binaryBytes: 1_000_000, timeoutMs: 10_000 });
    assert.deepEqual([binary.ok, binary.echoed], [true, 2]);
    const wrong = await runWsClient({ url: `ws://127.0.0.1:${srv.port}/elsewhere`, count: 1, timeoutMs: 10_000 });
    assert.equal(wrong.ok, false);
    assert.match(wrong.error ?? '', /answered 404/);
  });

  it('close() ends idle keep-alive connections and resolves', async () => {
    const s = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'x', version: 'v1', pod: 'p' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const r = await request(s.port, '/', { agent });
    assert.equal(r.status, 200);
    assert.equal(r.headers['keep-alive'], 'timeout=120');
    const h2 = http2.connect(`http://127.0.0.1:${s.port}`);
    await new Promise((r) => h2.once('connect', r));
    const goaway = new Promise((r) => h2.once('goaway', r));
    // A grace far above the test timeout: only ending the idle connections lets close() resolve.
    await s.close(600_000);
    await goaway;
    agent.destroy();
    h2.destroy();
  });
});
