// Unit tests (loopback only) of the sample workloads: echo half-close, pump verification, http JSON and /bytes, client reuse.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { http1Once, runClient } from '../../src/sample/client';
import { startEchoServer } from '../../src/sample/echo-server';
import { startSampleHttpServer, type SampleHttpServer } from '../../src/sample/http-server';
import { parseHostPort, pump } from '../../src/sample/pump';

function port(s: net.Server): number {
  return (s.address() as net.AddressInfo).port;
}

describe('sample workloads', () => {
  let echo: net.Server;
  let http: SampleHttpServer;
  before(async () => {
    echo = await startEchoServer({ port: 0, host: '127.0.0.1' });
    http = await startSampleHttpServer({ port: 0, host: '127.0.0.1', name: 'svc', version: 'v9', pod: 'pod-1' });
  });
  after(() => {
    echo.close();
    return http.close(0);
  });

  it('echo keeps echoing after our FIN, then closes its side', async () => {
    const sock = net.connect({ port: port(echo), host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => sock.once('connect', r));
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    sock.end('after-fin');
    await new Promise((r) => sock.once('end', r));
    assert.equal(Buffer.concat(got).toString(), 'after-fin');
    sock.destroy();
  });

  it('pump verifies a large payload byte-exact, and an empty one', async () => {
    const r = await pump({ host: '127.0.0.1', port: port(echo), bytes: 5_000_123, timeoutMs: 10_000 });
    assert.equal(r.ok, true, r.error);
    assert.equal(r.received, 5_000_123);
    assert.equal(r.sha256Sent, r.sha256Received);
    assert.equal((await pump({ host: '127.0.0.1', port: port(echo), bytes: 0, timeoutMs: 5000 })).ok, true);
  });

  it('pump reports a refused connection as a failure', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const p = port(closed);
    closed.close();
    const r = await pump({ host: '127.0.0.1', port: p, bytes: 10, timeoutMs: 5000 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /ECONNREFUSED/);
  });

  it('parses HOST:PORT forms', () => {
    assert.deepEqual(parseHostPort('198.19.1.2:9000'), { host: '198.19.1.2', port: 9000 });
    assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
    assert.throws(() => parseHostPort('nohost'));
    assert.throws(() => parseHostPort('h:70000'));
  });

  it('http answers who served and who asked, and /bytes/N sends N bytes', async () => {
    const r = await http1Once({ url: `http://127.0.0.1:${http.port}/a/b?c=d`, timeoutMs: 5000, headers: { 'x-test': '1' } }, 0, false);
    assert.equal(r.status, 200);
    const body = r.body as { name: string; version: string; pod: string; path: string; method: string; headers: Record<string, string>; peer: { address: string; port: number } };
    assert.equal(body.name, 'svc');
    assert.equal(body.version, 'v9');
    assert.equal(body.pod, 'pod-1');
    assert.equal(body.path, '/a/b?c=d');
    assert.equal(body.method, 'GET');
    assert.equal(body.headers['x-test'], '1');
    assert.equal(body.peer.address, '127.0.0.1');
    assert.ok(body.peer.port > 0);
    const big = await http1Once({ url: `http://127.0.0.1:${http.port}/bytes/3000000`, timeoutMs: 5000 }, 1, false);
    assert.equal(big.bytes, 3_000_000);
    assert.equal(big.body, undefined);
  });

  it('client reuses one keep-alive connection unless asked not to', async () => {
    const ports = async (newConnections: boolean): Promise<number> => {
      const lines: string[] = [];
      const summary = await runClient({ url: `http://127.0.0.1:${http.port}/`, count: 3, timeoutMs: 5000, newConnections }, (l) => lines.push(l));
      assert.equal(summary.failed, 0);
      return new Set(lines.map((l) => (JSON.parse(l) as { body: { peer: { port: number } } }).body.peer.port)).size;
    };
    assert.equal(await ports(false), 1);
    assert.equal(await ports(true), 3);
  });
});
