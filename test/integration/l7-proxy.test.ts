// Integration: the L7 path between two in-process agents over real HBONE on loopback: routing by header
// and weight per request on one keep-alive connection, rewrites, redirects, 404 for no route, both
// reporters' request metrics, and a malformed request answered 400 on its connection only.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import type { RouteTable } from '../../src/state/routes';
import { appServer, pod, startPair, type L7Pair } from '../helpers/l7-pair';
import { END_HEADERS, END_STREAM, PREFACE, frame, literal } from '../helpers/raw-h2-probe';
import { waitFor } from '../helpers/wait';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.0.2`, 'client', { app: 'client' });
const V1 = pod('web-v1', `127.${base}.1.2`, 'web', { app: 'web', version: 'v1' });
const V2 = pod('web-v2', `127.${base}.1.3`, 'web', { app: 'web', version: 'v2' });
const VIP = { ip: '10.96.0.10', port: 80 };
const HOST = 'web.default.svc.cluster.local';

function ep(p: typeof V1): EndpointInfo {
  return { ip: p.ip, port: 8080, pod: p.name, namespace: 'default', serviceAccount: p.serviceAccount, inMesh: true };
}
function cluster(name: string): ClusterInfo {
  return { name, host: HOST, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'http' };
}

const ROUTES: RouteTable = {
  name: 'vip|10.96.0.10:80',
  routes: [
    {
      name: 'default/web/canary',
      source: { kind: 'HTTPRoute', namespace: 'default', name: 'web', rule: 'canary' },
      matches: [{ headers: [{ name: 'x-canary', kind: 'exact', value: 'true' }], query: [] }],
      action: { kind: 'forward', backends: [{ cluster: 'v2', weight: 1 }] },
      requestHeaders: { set: [['x-route', 'canary']], add: [], remove: [] },
      responseHeaders: { set: [['x-answered-by-route', 'canary']], add: [], remove: [] },
    },
    {
      name: 'default/web/old',
      source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' },
      matches: [{ path: { kind: 'prefix', value: '/old' }, headers: [], query: [] }],
      action: { kind: 'redirect', redirect: { path: { kind: 'prefix', match: '/old', value: '/new' }, status: 301 } },
    },
    {
      name: 'default/web/api',
      source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' },
      matches: [{ path: { kind: 'prefix', value: '/api' }, headers: [], query: [] }],
      action: { kind: 'forward', backends: [{ cluster: 'v1', weight: 1 }], rewrite: { path: { kind: 'prefix', match: '/api', value: '/v1' } } },
    },
    {
      name: 'default/web/split',
      source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' },
      matches: [{ path: { kind: 'prefix', value: '/' }, method: 'GET', headers: [], query: [] }],
      action: {
        kind: 'forward',
        backends: [
          { cluster: 'v1', weight: 3 },
          { cluster: 'v2', weight: 1 },
        ],
      },
    },
  ],
};

/** HTTP/1.1 requests on one keep-alive connection to the client pod's redirected port. */
function client(port: number): { get(path: string, headers?: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    get: (path, headers = {}) =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { host: `${HOST}`, ...headers } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      }),
    close: () => agent.destroy(),
  };
}

describe('L7 between two agents over HBONE (in-process)', () => {
  let pair: L7Pair;
  const apps: http.Server[] = [];
  const logLines: string[] = [];

  before(async () => {
    apps.push(await appServer(V1.ip, 8080, 'web-v1'), await appServer(V2.ip, 8080, 'web-v2'));
    // The upgrade target: answers 101, then echoes what it gets with "-back".
    apps[1]!.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
      socket.on('data', (d) => socket.write(`${d.toString()}-back`));
      socket.on('end', () => socket.end());
    });
    pair = await startPair(CLIENT, [V1, V2], { accessLog: 'all', logLines });
    pair.configure({
      clusters: [cluster('v1'), cluster('v2')],
      endpoints: new Map([
        ['v1', [ep(V1)]],
        ['v2', [ep(V2)]],
      ]),
      vips: [{ vip: VIP.ip, port: VIP.port, cluster: 'v1', protocol: 'http', routeTable: ROUTES.name }],
      routes: [ROUTES],
    });
    pair.setDestination(VIP);
  });

  after(async () => {
    await pair?.close();
    for (const s of apps) s.close();
  });

  it('routes each request of one keep-alive connection on its own: weights 3:1 exactly, header match to v2', async () => {
    const c = client(pair.clientPort);
    try {
      const served: string[] = [];
      for (let i = 0; i < 8; i++) served.push(JSON.parse((await c.get('/x')).body).pod);
      assert.deepEqual(served.filter((p) => p === 'web-v1').length, 6, served.join(' '));
      const canary = await c.get('/x', { 'x-canary': 'true' });
      assert.equal(canary.status, 200);
      const body = JSON.parse(canary.body);
      assert.equal(body.pod, 'web-v2');
      assert.equal(body.headers['x-route'], 'canary');
      assert.equal(canary.headers['x-answered-by-route'], 'canary');
      assert.match(body.headers['x-request-id'], /^[0-9a-f-]{36}$/);
    } finally {
      c.close();
    }
  });

  it('rewrites a prefix, redirects with Location, and answers 404 when no route matches', async () => {
    const c = client(pair.clientPort);
    try {
      const api = await c.get('/api/users?id=7');
      assert.equal(JSON.parse(api.body).path, '/v1/users?id=7');
      const old = await c.get('/old/page?q=1');
      assert.equal(old.status, 301);
      assert.equal(old.headers.location, `http://${HOST}/new/page?q=1`);
      const none = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: pair.clientPort, path: '/x', method: 'DELETE' }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(none, 404);
    } finally {
      c.close();
    }
  });

  it('counts each request once per reporter with Istio labels', async () => {
    const a = await pair.registryA.getSingleMetricAsString('istio_requests_total');
    const b = await pair.registryB.getSingleMetricAsString('istio_requests_total');
    assert.match(a, /istio_requests_total\{reporter="source",source_workload="client",.*destination_workload="web-v2".*destination_service="web.default.svc.cluster.local",destination_service_name="web",destination_service_namespace="default",request_protocol="http",response_code="200",grpc_response_status="-",response_flags="-",connection_security_policy="mutual_tls"\} 3$/m);
    assert.match(a, /response_code="404".*response_flags="NR".* 1/);
    // In-process the client's tunnels come from 127.0.0.1, which names no pod: the source agent's CONNECT does.
    assert.match(b, /istio_requests_total\{reporter="destination",source_workload="client",source_workload_namespace="default",source_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/client",source_app="client",.*destination_workload="web-v1",.*destination_app="web",destination_version="v1",destination_service="web.default.svc.cluster.local",.*response_code="200".*connection_security_policy="mutual_tls"\} 7$/m);
    assert.doesNotMatch(a + b, /\/api|\/old|\/x/, 'no path in any label');
  });

  it('streams a chunked request body, honours Expect: 100-continue, and speaks HTTP/2 to a client that does', async () => {
    const body = Buffer.alloc(300_000, 'b');
    const posted = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request({ host: '127.0.0.1', port: pair.clientPort, path: '/upload', method: 'POST', headers: { host: HOST, expect: '100-continue', 'x-canary': 'true' } }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: b, continued }));
      });
      req.on('continue', () => {
        continued = true;
        // chunked: no content-length, written in pieces
        for (let i = 0; i < 3; i++) req.write(body.subarray(i * 100_000, (i + 1) * 100_000));
        req.end();
      });
      req.on('error', reject);
    });
    assert.equal(posted.status, 200);
    assert.ok(posted.continued, 'the client got 100 Continue');
    assert.equal(JSON.parse(posted.body).bytes, body.length);
    const h2 = await new Promise<{ status: number; pod: string }>((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${pair.clientPort}`);
      session.on('error', reject);
      const r = session.request({ ':path': '/h2', ':authority': HOST, 'x-canary': 'true' });
      let b = '';
      let status = 0;
      r.on('response', (h) => (status = Number(h[':status'])));
      r.on('data', (c: Buffer) => (b += c.toString()));
      r.on('end', () => {
        session.close();
        resolve({ status, pod: JSON.parse(b).pod });
      });
      r.end();
    });
    assert.deepEqual(h2, { status: 200, pod: 'web-v2' });
  });

  it('tunnels an HTTP/1.1 Upgrade (WebSocket handshake, then bytes both ways)', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(pair.clientPort, '127.0.0.1');
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n\r\n') && !buf.includes('ping-back')) s.write('ping');
        if (buf.includes('ping-back')) {
          s.end();
          resolve(buf);
        }
      });
      s.on('error', reject);
      s.write(`GET /ws HTTP/1.1\r\nhost: ${HOST}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-canary: true\r\n\r\n`);
    });
    assert.match(got, /^HTTP\/1\.1 101 Switching Protocols/);
    assert.match(got, /ping-back/);
  });

  it('writes one access line per request per agent, and 1,000 distinct paths add no series', async () => {
    const series = async (): Promise<number> =>
      (await pair.registryA.getSingleMetricAsString('istio_request_duration_milliseconds')).split('\n').filter((l) => l.startsWith('istio_request_duration_milliseconds_count')).length +
      (await pair.registryB.getSingleMetricAsString('istio_request_duration_milliseconds')).split('\n').filter((l) => l.startsWith('istio_request_duration_milliseconds_count')).length;
    const c = client(pair.clientPort);
    try {
      await c.get('/warm', { 'x-canary': 'true' });
      await c.get('/warm');
      await c.get('/warm');
      await c.get('/warm');
      const before = await series();
      logLines.length = 0;
      const id = 'trace-me-123';
      await c.get('/once', { 'x-request-id': id, 'user-agent': 'nodemesh-test/1' });
      await waitFor('both access lines', async () => logLines.filter((l) => l.includes(id)).length === 2, 3000);
      const lines = logLines.filter((l) => l.includes(id)).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(lines.map((l) => l.reporter).sort(), ['destination', 'source']);
      const src = lines.find((l) => l.reporter === 'source')!;
      assert.equal(src.method, 'GET');
      assert.equal(src.path, '/once');
      assert.equal(src.status, 200);
      assert.equal(src.request_id, id);
      assert.equal(src.user_agent, 'nodemesh-test/1');
      assert.equal(src.route_name, 'default/web/split');
      assert.match(String(src.upstream_cluster), /^v[12]$/);
      assert.equal(src.response_flags, '-');
      assert.equal(typeof src.duration_ms, 'number');
      for (let i = 0; i < 1000; i++) await c.get(`/unique/${i}?q=${i}`);
      assert.equal(await series(), before, 'distinct paths never become series');
    } finally {
      c.close();
    }
  });

  it('answers a smuggling-shaped request 400 on its own connection; the next connection is served', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(pair.clientPort, '127.0.0.1');
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
      s.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n');
    });
    assert.match(raw, /^HTTP\/1\.1 400 Bad Request/);
    const c = client(pair.clientPort);
    try {
      assert.equal((await c.get('/x')).status, 200);
    } finally {
      c.close();
    }
  });

  /** What the client agent answered to `bytes` on a new connection (without an answer that ends it, what came within 3 s). */
  const answer = (bytes: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(pair.clientPort, '127.0.0.1');
      let got = '';
      const timer = setTimeout(() => {
        s.destroy();
        resolve(got);
      }, 3000);
      s.on('data', (d) => (got += d.toString()));
      s.on('end', () => {
        clearTimeout(timer);
        resolve(got);
      });
      s.on('error', reject);
      s.write(bytes);
    });

  it('answers a request line without a version (HTTP/0.9, headers after it) 400 before any route or upstream', async () => {
    for (const raw of [await answer('GET /v09\r\nhost: x\r\n\r\n'), await answer('GET /ws\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n')]) {
      assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(raw, /\r\n\r\nbad request: the request line has no HTTP version/);
      assert.doesNotMatch(raw, /x-served-by|web-v/);
    }
  });

  /** The client agent's count of malformed requests. */
  const badRequests = async (): Promise<number> => {
    const line = (await pair.registryA.getSingleMetricAsString('nodemesh_proxy_errors_total')).split('\n').find((l) => l.includes('reason="bad_request"'));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  it('answers an oversized head 431 and counts the connection once, though the rest of the head keeps arriving', async () => {
    const before = await badRequests();
    const raw = await answer(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(raw, /\r\n\r\nrequest header fields too large: .+ \(HPE_HEADER_OVERFLOW\)\n$/);
    assert.equal((await badRequests()) - before, 1);
  });

  /** The frame types the client agent sent back to `bytes` (a prior-knowledge HTTP/2 connection). */
  const h2Answer = (bytes: Buffer): Promise<{ type: number; code: number | null }[]> =>
    new Promise((resolve, reject) => {
      const s = net.connect(pair.clientPort, '127.0.0.1');
      let got = Buffer.alloc(0);
      const done = (): void => {
        clearTimeout(timer);
        s.destroy();
        const frames: { type: number; code: number | null }[] = [];
        for (let at = 0; at + 9 <= got.length; ) {
          const len = got.readUIntBE(at, 3);
          const type = got[at + 3]!;
          // RST_STREAM: the code is the payload; GOAWAY: after the last stream id.
          const code = type === 3 ? got.readUInt32BE(at + 9) : type === 7 ? got.readUInt32BE(at + 13) : null;
          frames.push({ type, code });
          at += 9 + len;
        }
        resolve(frames);
      };
      const timer = setTimeout(done, 3000);
      s.on('data', (d) => (got = Buffer.concat([got, d])));
      s.on('end', done);
      s.on('error', reject);
      s.write(bytes);
    });

  it('counts a client breaking HTTP/2 once per connection: a connection error (GOAWAY) and a malformed request (RST_STREAM)', async () => {
    const settings = frame(4, 0, 0);
    // HEADERS on stream 0 is a connection error: a GOAWAY with an error code (Node's http2 destroys the session
    // on nghttp2's verdict and says INTERNAL_ERROR rather than PROTOCOL_ERROR).
    let before = await badRequests();
    let frames = await h2Answer(Buffer.concat([PREFACE, settings, frame(1, END_HEADERS, 0, Buffer.from([0x82]))]));
    assert.ok(frames.some((f) => f.type === 7 && f.code !== 0), `expected a GOAWAY with an error code, got ${JSON.stringify(frames)}`);
    assert.equal((await badRequests()) - before, 1);
    // A request whose DATA disagrees with its content-length: the stream is reset PROTOCOL_ERROR; the
    // connection carries on (a second request on it, well formed, would be served).
    before = await badRequests();
    const head = Buffer.concat([literal(':method', 'POST'), literal(':scheme', 'http'), literal(':path', '/h2-bad'), literal(':authority', HOST), literal('content-length', '10')]);
    frames = await h2Answer(Buffer.concat([PREFACE, settings, frame(1, END_HEADERS, 1, head), frame(0, END_STREAM, 1, Buffer.from('abc'))]));
    assert.ok(frames.some((f) => f.type === 3 && f.code === 1), `expected RST_STREAM PROTOCOL_ERROR, got ${JSON.stringify(frames)}`);
    assert.ok(!frames.some((f) => f.type === 7 && f.code !== 0), 'the connection is not torn down for one bad stream');
    assert.equal((await badRequests()) - before, 1);
    // A client that just goes away is not a malformed one.
    before = await badRequests();
    await h2Answer(Buffer.concat([PREFACE, settings, frame(7, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]))]));
    assert.equal((await badRequests()) - before, 0);
  });

  it('does not count a client resetting its keep-alive connection as a malformed request', async () => {
    const before = await badRequests();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: pair.clientPort, path: '/reset', headers: { host: HOST }, agent, timeout: 5000 }, (res) => {
        res.resume();
        // The answer read, the connection idle in keep-alive: reset it.
        res.on('end', () => {
          (req.socket as net.Socket).resetAndDestroy();
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', reject);
    });
    agent.destroy();
    // A malformed request after it: counted alone.
    assert.match(await answer('GET /v09\r\n\r\n'), /^HTTP\/1\.1 400 /);
    await waitFor('the 400 to be counted', async () => (await badRequests()) > before);
    assert.equal((await badRequests()) - before, 1);
  });
});
