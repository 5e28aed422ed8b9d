// Unit tests (loopback only) of `nodemesh sample client`: per-request lines, the summary's counts, h2c, concurrency, CLI flags.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runClient, type ClientOptions, type ClientResult, type ClientSummary } from '../../src/sample/client';
import { startSampleHttpServer, type SampleHttpServer } from '../../src/sample/http-server';
import { MAX_NAMES, OTHER, Tally } from '../../src/sample/tally';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');

interface Body {
  pod: string;
  version: string;
  method: string;
  httpVersion: string;
  headers: Record<string, string>;
  peer: { port: number };
  requestBody?: { bytes: number; sha256: string };
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('sample client', () => {
  let v1: SampleHttpServer;
  let v2: SampleHttpServer;
  before(async () => {
    v1 = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'svc', version: 'v1', pod: 'pod-a' });
    v2 = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'svc', version: 'v2', pod: 'pod-b' });
  });
  after(async () => {
    await v1.close(0);
    await v2.close(0);
  });

  async function run(opts: Partial<ClientOptions>, server = v1): Promise<{ lines: ClientResult[]; summary: ClientSummary }> {
    const lines: ClientResult[] = [];
    const summary = await runClient({ url: `http://127.0.0.1:${server.port}/`, timeoutMs: 5000, ...opts }, (l) => lines.push(JSON.parse(l) as ClientResult));
    return { lines, summary };
  }

  it('Tally counts outcomes, pods and versions, and ranks latencies to within 1 %', () => {
    const t = new Tally();
    for (let ms = 1; ms <= 100; ms++) t.add({ ok: ms % 10 !== 0, outcome: ms % 10 === 0 ? '503' : '200', pod: ms % 2 ? 'a' : 'b', version: ms <= 90 ? 'v1' : 'v2', ms });
    t.add({ ok: false, outcome: 'ECONNREFUSED', error: true, ms: 0.5 });
    const s = t.summary();
    assert.deepEqual([s.total, s.ok, s.failed], [101, 90, 11]);
    assert.deepEqual(s.byOutcome, { '200': 90, '503': 10 });
    assert.deepEqual(s.errors, { ECONNREFUSED: 1 });
    assert.deepEqual(s.byPod, { a: 50, b: 50 });
    assert.deepEqual(s.byVersion, { v1: 90, v2: 10 });
    // Nearest rank over 101 answers: p50 is the 51st (50 ms), p99 the 100th (99 ms).
    assert.ok(Math.abs(s.latencyMs.p50 - 50) <= 0.5, `p50 ${s.latencyMs.p50}`);
    assert.ok(Math.abs(s.latencyMs.p99 - 99) <= 1, `p99 ${s.latencyMs.p99}`);
    assert.equal(s.latencyMs.max, 100);
  });

  it('Tally keeps at most MAX_NAMES names per map, counting the rest under (other)', () => {
    const t = new Tally();
    for (let i = 0; i < MAX_NAMES + 50; i++) t.add({ ok: true, outcome: '200', pod: `pod-${i}`, ms: 1 });
    const s = t.summary();
    assert.equal(Object.keys(s.byPod).length, MAX_NAMES + 1);
    assert.equal(s.byPod[OTHER], 50);
  });

  it('keeps the per-request line fields, adds servedBy, and sums up by status, pod and version', async () => {
    const { lines, summary } = await run({ url: `http://127.0.0.1:${v1.port}/x?fail=2`, count: 5, headers: { 'x-fail-key': 'client-sum' } });
    assert.deepEqual(lines.map((l) => [l.i, l.ok, l.status, l.servedBy]), [
      [0, false, 500, 'pod-a'],
      [1, false, 500, 'pod-a'],
      [2, true, 200, 'pod-a'],
      [3, true, 200, 'pod-a'],
      [4, true, 200, 'pod-a'],
    ]);
    assert.ok(lines.every((l) => l.ms > 0 && (l.bytes ?? 0) > 0 && (l.body as Body).version === 'v1'));
    assert.deepEqual(
      { total: summary.total, ok: summary.ok, failed: summary.failed, byStatus: summary.byStatus, errors: summary.errors, byPod: summary.byPod, byVersion: summary.byVersion },
      { total: 5, ok: 3, failed: 2, byStatus: { '200': 3, '500': 2 }, errors: {}, byPod: { 'pod-a': 5 }, byVersion: { v1: 5 } },
    );
    assert.deepEqual(Object.keys(summary.latencyMs), ['p50', 'p90', 'p99', 'max']);
  });

  it('counts refused connections as errors by code', async () => {
    const gone = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'x', version: 'v', pod: 'p' });
    await gone.close(0);
    const { lines, summary } = await run({ count: 2 }, gone);
    assert.equal(lines[0]?.error, 'ECONNREFUSED');
    assert.deepEqual([summary.failed, summary.byStatus, summary.errors], [2, {}, { ECONNREFUSED: 2 }]);
  });

  it('sends headers, a method and a body (given or generated)', async () => {
    const given = await run({ method: 'PUT', headers: { 'x-canary': 'true' }, body: Buffer.from('hello') });
    const b = given.lines[0]?.body as Body;
    assert.equal(b.method, 'PUT');
    assert.equal(b.headers['x-canary'], 'true');
    assert.deepEqual(b.requestBody, { bytes: 5, sha256: createHash('sha256').update('hello').digest('hex') });
    const big = await run({ method: 'POST', bodyBytes: 3_000_000, headers: { expect: '100-continue' } });
    assert.deepEqual((big.lines[0]?.body as Body).requestBody, { bytes: 3_000_000, sha256: createHash('sha256').update(Buffer.alloc(3_000_000, 'x')).digest('hex') });
  });

  it('speaks h2c with prior knowledge, multiplexing concurrent requests on one connection', async () => {
    const { lines, summary } = await run({ http2: true, count: 20, concurrency: 5, method: 'POST', body: Buffer.from('abc'), url: `http://127.0.0.1:${v2.port}/h?trailers=1` }, v2);
    assert.equal(summary.ok, 20);
    assert.deepEqual(summary.byVersion, { v2: 20 });
    assert.deepEqual([...new Set(lines.map((l) => (l.body as Body).httpVersion))], ['2.0']);
    assert.equal(new Set(lines.map((l) => (l.body as Body).peer.port)).size, 1);
    assert.deepEqual(new Set(lines.map((l) => l.i)).size, 20);
    assert.ok(lines.every((l) => typeof l.trailers?.['x-body-sha256'] === 'string'));
    const fresh = await run({ http2: true, count: 3, newConnections: true }, v2);
    assert.equal(new Set(fresh.lines.map((l) => (l.body as Body).peer.port)).size, 3);
  });

  it('with --concurrency N over HTTP/1.1, uses at most N keep-alive connections', async () => {
    const { lines, summary } = await run({ count: 30, concurrency: 4 });
    assert.equal(summary.total, 30);
    assert.equal(summary.ok, 30);
    const conns = new Set(lines.map((l) => (l.body as Body).peer.port)).size;
    assert.ok(conns >= 1 && conns <= 4, `${conns} connections`);
  });

  it('with a duration and no count, keeps sending until the time is up', async () => {
    const { lines, summary } = await run({ durationMs: 300, lines: false });
    assert.equal(lines.length, 0);
    assert.ok(summary.total > 1, `${summary.total} requests`);
    assert.equal(summary.failed, 0);
  });

  it('CLI: -H repeatable, --summary last line, exit 1 on a failure, clear errors on bad flags', async () => {
    const url = `http://127.0.0.1:${v1.port}/?fail=1`;
    const r = await cli(['sample', 'client', '--url', url, '--count', '3', '-H', 'x-fail-key: cli-1', '-H', 'x-canary: true', '--summary']);
    assert.equal(r.code, 1, r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as ClientResult & { summary?: ClientSummary });
    assert.equal(out.length, 4);
    assert.equal((out[0]?.body as Body).headers['x-canary'], 'true');
    assert.deepEqual(out[3]?.summary?.byStatus, { '200': 2, '500': 1 });
    const quiet = await cli(['sample', 'client', '--url', `http://127.0.0.1:${v1.port}/`, '--count', '2', '--quiet', '--summary', '--http2', '-X', 'post', '-d', 'x']);
    assert.equal(quiet.code, 0, quiet.stderr);
    const only = JSON.parse(quiet.stdout) as { summary: ClientSummary };
    assert.deepEqual([only.summary.total, only.summary.byPod], [2, { 'pod-a': 2 }]);
    const bad = await cli(['sample', 'client', '--url', url, '-H', 'no-colon']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"no-colon" is not "name: value"/);
    const both = await cli(['sample', 'client', '--url', url, '-d', 'x', '--data-bytes', '3']);
    assert.match(both.stderr, /cannot be used with/);
  });

  it('CLI grpc-client: a bad --status says what to give', async () => {
    const r = await cli(['sample', 'grpc-client', '--target', '127.0.0.1:1', '--status', 'SOMETIMES']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NM_SAMPLE_BAD_ARG/);
  });
});
