// Every HTTP listener of the agent (admin on admin.sock and TCP, metrics, readiness, enrollment) and of the
// control plane (metrics/debug) under hostile clients: a 50 MB body is answered 413 without being read, slow
// heads and bodies get 408, connections over the cap are refused, and normal requests are still answered.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type http from 'node:http';
import type { Agent } from '../../src/agent/agent';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { silentLogger } from '../../src/telemetry/logger';
import { createBoundedServer, DEFAULT_HTTP_LIMITS } from '../../src/util/http';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { openIdle, rawRequest, type HttpTarget } from '../helpers/raw-http';
import { waitFor } from '../helpers/wait';

const MB50 = 50 * 1024 * 1024;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('the bounded HTTP server (small limits)', () => {
  let server: http.Server;
  let target: HttpTarget;
  const limits = { maxBodyBytes: 1024, headersTimeoutMs: 300, requestTimeoutMs: 600, maxConnections: 3 };
  const bodies: number[] = [];

  before(async () => {
    server = createBoundedServer(
      (_req, res, body) => {
        bodies.push(body.length);
        res.end(`got ${body.length}\n`);
      },
      { name: 'test', ...limits },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('hands the handler a body within the limit; answers 413 to a larger one, declared or chunked, without reading it', async () => {
    const ok = await rawRequest(target, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n', { bodyBytes: 1024, deadlineMs: 5000 });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /got 1024/);
    const declared = await rawRequest(target, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${MB50}\r\n\r\n`, { bodyBytes: MB50, deadlineMs: 5000 });
    assert.equal(declared.status, 413);
    assert.match(declared.text, /"code":"NM_HTTP_BODY_TOO_LARGE"/);
    assert.notEqual(declared.end, 'deadline', 'the server closed the connection');
    const chunked = await rawRequest(target, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', { bodyBytes: MB50, chunked: true, deadlineMs: 5000 });
    assert.equal(chunked.status, 413);
    assert.ok(chunked.bodySent < MB50, `the rest of the body was not read (${chunked.bodySent} bytes sent)`);
    assert.deepEqual(bodies, [1024], 'the handler never saw the large bodies');
  });

  it('answers 408 to a head or a body that does not arrive in time', async () => {
    const [head, body] = await Promise.all([
      rawRequest(target, 'GET / HTTP/1.1\r\nHost: x\r\n', { deadlineMs: 5000 }),
      rawRequest(target, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n', { bodyBytes: 100, pauseAfter: 10, deadlineMs: 5000 }),
    ]);
    assert.equal(head.status, 408);
    assert.equal(body.status, 408);
    assert.equal(head.end, 'closed');
    assert.equal(body.end, 'closed');
  });

  it('refuses connections over the cap and serves those within it', async () => {
    const socks = await openIdle(target, 5);
    await waitFor('two over the cap to be closed', async () => socks.filter((s) => s.destroyed).length === 2, 3000);
    const open = socks.find((s) => !s.destroyed)!;
    const answer = new Promise<string>((r) => open.once('data', (d) => r(d.toString())));
    open.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await answer, /^HTTP\/1\.1 200/);
    for (const s of socks) s.destroy();
  });
});

describe('every HTTP listener of the agent and the control plane', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-http-'));
  let agent: Agent;
  let cp: ControlPlaneHandle;
  const listeners: { name: string; target: HttpTarget; get: string; post: string }[] = [];

  before(async () => {
    fs.mkdirSync(path.join(dir, 'cg'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'config'));
    const [adminPort, metricsPort, readyPort] = [await freePort(), await freePort(), await freePort()];
    agent = testAgent(dir, new FakeDatapath(), { adminPort, metricsPort, readyPort });
    await agent.start();
    cp = await startControlPlane({ config: path.join(dir, 'config'), xdsAddress: '127.0.0.1:0', metricsPort: 0, logger: silentLogger() });
    const tcp = (port: number): HttpTarget => ({ host: '127.0.0.1', port });
    listeners.push(
      { name: 'admin.sock', target: { socketPath: agent.adminSocket }, get: '/healthz/ready', post: '/logging?level=info' },
      { name: 'admin 15000', target: tcp(adminPort), get: '/healthz/ready', post: '/logging?level=info' },
      { name: 'metrics 15020', target: tcp(metricsPort), get: '/metrics', post: '/metrics' },
      { name: 'ready 15021', target: tcp(readyPort), get: '/healthz/ready', post: '/healthz/ready' },
      { name: 'enroll.sock', target: { socketPath: agent.enrollSocket }, get: '/v1/pods', post: '/v1/pods' },
      { name: 'control plane 15014', target: tcp(cp.metricsPort!), get: '/healthz/ready', post: '/metrics' },
    );
  });
  after(async () => {
    await cp?.close();
    await agent?.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = (l: (typeof listeners)[number]): Promise<number | null> =>
    rawRequest(l.target, `GET ${l.get} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { deadlineMs: 5000 }).then((a) => a.status);

  it('answers normal requests; the metrics and readiness ports serve nothing else', async () => {
    for (const l of listeners) assert.equal(await get(l), 200, l.name);
    for (const l of listeners.filter((x) => /^(metrics|ready) /.test(x.name))) {
      const a = await rawRequest(l.target, 'POST /logging?level=debug HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { deadlineMs: 5000 });
      assert.equal(a.status, 404, `${l.name}: ${a.text}`);
    }
    assert.equal(agent.logLevel, 'silent', 'the log level did not change');
  });

  it('answers a 50 MB body 413 without reading it (declared or chunked); memory does not grow by it', async (t) => {
    const rss0 = process.memoryUsage.rss();
    for (const l of listeners) {
      const declared = await rawRequest(l.target, `POST ${l.post} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MB50}\r\n\r\n`, { bodyBytes: MB50, deadlineMs: 10_000 });
      assert.equal(declared.status, 413, `${l.name}: ${declared.text.slice(0, 200)}`);
      assert.notEqual(declared.end, 'deadline', `${l.name} closed the connection`);
      const chunked = await rawRequest(l.target, `POST ${l.post} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, { bodyBytes: MB50, chunked: true, deadlineMs: 10_000 });
      assert.equal(chunked.status, 413, `${l.name}: ${chunked.text.slice(0, 200)}`);
      assert.ok(chunked.bodySent < MB50 / 4, `${l.name} stopped reading (${chunked.bodySent} bytes were sent)`);
    }
    const grown = process.memoryUsage.rss() - rss0;
    t.diagnostic(`RSS ${(rss0 / 1048576).toFixed(1)} MB before, grown by ${(grown / 1048576).toFixed(1)} MB after 12 bodies of 50 MB`);
    assert.ok(grown < MB50 / 2, `12 bodies of 50 MB sent; RSS grew by ${(grown / 1048576).toFixed(1)} MB`);
    for (const l of listeners) assert.equal(await get(l), 200, `${l.name} still answers`);
  });

  it('answers 408 to heads and bodies that do not arrive within their deadlines', async () => {
    const slack = 3000; // Node checks the deadlines every second
    const answers = await Promise.all(
      listeners.flatMap((l) => [
        rawRequest(l.target, `GET ${l.get} HTTP/1.1\r\nHost: x\r\n`, { deadlineMs: DEFAULT_HTTP_LIMITS.headersTimeoutMs + slack }).then((a) => ({ l, what: 'head', a })),
        rawRequest(l.target, `POST ${l.post} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n`, { bodyBytes: 1000, pauseAfter: 10, deadlineMs: DEFAULT_HTTP_LIMITS.requestTimeoutMs + slack }).then((a) => ({ l, what: 'body', a })),
      ]),
    );
    for (const { l, what, a } of answers) {
      assert.equal(a.status, 408, `${l.name}, slow ${what}: ${a.end} ${a.text.slice(0, 100)}`);
      assert.equal(a.end, 'closed', `${l.name}, slow ${what}`);
    }
  });

  it('refuses connections over the cap of each listener; those within it, and new ones afterwards, are served', async () => {
    for (const l of listeners) {
      const socks = await openIdle(l.target, DEFAULT_HTTP_LIMITS.maxConnections + 4);
      await waitFor(`${l.name}: the 4 over the cap closed`, async () => socks.filter((s) => s.destroyed).length === 4, 3000);
      const open = socks.find((s) => !s.destroyed)!;
      const answer = new Promise<string>((r) => open.once('data', (d) => r(d.toString())));
      open.write(`GET ${l.get} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(await answer, /^HTTP\/1\.1 200/, l.name);
      for (const s of socks) s.destroy();
      await waitFor(`${l.name} to serve a new connection`, async () => (await get(l)) === 200, 3000);
    }
  });
});
