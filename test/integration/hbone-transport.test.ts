import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { CertBundle } from '../../src/identity/types';
import {
  HBONE_REASON_HEADER,
  HboneClientPool,
  HboneClientRejectedError,
  HboneConnectRefusedError,
  HboneIdentityMismatchError,
  type HboneConnectContext,
  type HboneConnectRequest,
  type HboneRespond,
  HboneServer,
  HboneStreamResetError,
  relayStream,
} from '../../src/proxy/hbone';
import { H2_ENGINES, type HboneStream as H2Stream } from '../../src/proxy/hbone/h2-engine';
import { adoptAccepted, Direction, newUpstream, type RelayResult } from '../../src/proxy/relay';
import { createTestCa } from '../helpers/test-ca';
import { echoServer, listen, pump } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

const TD = 'spiffe://cluster.local/ns/default/sa';
const CLIENT_ID = `${TD}/client`;
const ECHO_ID = `${TD}/echo`;

// A bound, not yet listening fd on 127.0.0.1, as the agent gets from the pod netns: HboneServer makes it listen.
interface RawTcp {
  bind(host: string, port: number): number;
  getsockname(out: { port?: number }): number;
  fd: number;
}
const { TCP, constants } = (process as unknown as { binding(name: string): { TCP: new (t: number) => RawTcp; constants: { SERVER: number; SOCKET: number } } }).binding(
  'tcp_wrap',
);
const keep: RawTcp[] = [];
function boundFd(): number {
  const h = new TCP(constants.SERVER);
  assert.equal(h.bind('127.0.0.1', 0), 0);
  keep.push(h);
  return h.fd;
}
/** An unconnected client socket fd, as the datapath makes in the source pod's netns. */
async function clientFd(): Promise<number> {
  const h = new TCP(constants.SOCKET);
  assert.equal(h.bind('127.0.0.1', 0), 0);
  keep.push(h);
  return h.fd;
}

/** Rejects when the stream closes with a fault (after a clean end it has no effect). */
function onFault(stream: H2Stream, reject: (err: Error) => void): void {
  stream.once('close', () => reject(stream.error ?? new Error(`stream closed (HTTP/2 error code ${stream.rstCode})`)));
}

/** Sends `data` on a tunnel, half-closes, and collects everything until the peer's end. */
function roundTrip(stream: H2Stream, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    onFault(stream, reject);
    stream.write(data);
    stream.end();
    stream.resume();
  });
}

/** The server end of a tunnel that sends back what it gets. */
function echoStream(stream: H2Stream): void {
  stream.on('data', (c: Buffer) => stream.write(c));
  stream.on('end', () => stream.end());
  stream.resume();
}

function readSome(stream: H2Stream | net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      n += c.length;
      if (n >= bytes) {
        stream.off('data', onData);
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    if (stream instanceof net.Socket) stream.once('error', reject);
    else onFault(stream, reject);
    stream.resume();
  });
}

// The same suite on each HTTP/2 engine behind the HBONE contract: ours, and Node's http2 (the incident switch).
for (const engine of H2_ENGINES) describe(`HBONE transport over loopback (${engine} HTTP/2)`, () => {
  const ca = createTestCa();
  const foreign = createTestCa({ name: 'some other root' });
  let clientCert: CertBundle = ca.issue({ spiffeId: CLIENT_ID });
  let serverCert: CertBundle = ca.issue({ spiffeId: ECHO_ID });

  const echo = echoServer();
  let echoPort = 0;
  // Writes "hello" and half-closes at once, then records what the client sends after that.
  const afterFin: Buffer[] = [];
  const early = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.on('end', () => {
      afterFin.push(Buffer.concat(got));
      s.destroy();
    });
    s.end('hello');
  });
  let earlyPort = 0;

  // Inbound side: what the destination agent would do (policy, connect to the app, relay).
  const serverRelays: RelayResult[] = [];
  const connects: HboneConnectContext[] = [];
  let policy: (ctx: HboneConnectContext, respond: HboneRespond) => boolean = () => true;
  const server = new HboneServer({
    identity: () => serverCert,
    trustBundle: () => [ca.rootPem],
    maxConcurrentStreams: 40,
    h2: engine,
    onConnect: (ctx, respond) => {
      connects.push(ctx);
      if (!policy(ctx, respond)) return;
      // As the agent does: the app socket reads into a fixed buffer (zero-copy relay), or, for the other tests, plain.
      const direction = zeroCopy ? new Direction(32 * 1024) : null;
      if (direction) direction.copyBelow = 16 * 1024;
      const app = newUpstream(null, direction);
      app.connect({ host: ctx.authority.ip, port: ctx.authority.port });
      app.once('error', (err: NodeJS.ErrnoException) => respond(503, `upstream ${err.code ?? err.message}`));
      app.once('connect', () => {
        app.removeAllListeners('error');
        respond(200);
        const zc = direction ? { socket: app, direction } : undefined;
        relayStream(ctx.stream, app, { onClose: (r) => serverRelays.push(r), zeroCopy: zc });
      });
    },
  });
  let hbonePort = 0;

  const pool = new HboneClientPool({ idleTimeoutMs: 5_000, h2: engine });
  const request = (over: Partial<HboneConnectRequest> = {}): HboneConnectRequest => ({
    sourcePod: 'pod-a',
    source: clientCert,
    expectedServerId: ECHO_ID,
    address: { ip: '127.0.0.1', port: hbonePort },
    target: { ip: '127.0.0.1', port: echoPort },
    newSocket: async () => null,
    ...over,
  });

  // Outbound side: a local TCP listener standing in for the source pod's 15001, tunnelling through the pool.
  const clientRelays: RelayResult[] = [];
  const outbound = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    accepted.on('error', () => {});
    pool.connect(request({ newSocket: clientFd })).then(
      ({ stream }) => relayStream(accepted, stream, { onClose: (r) => clientRelays.push(r) }),
      () => accepted.resetAndDestroy(),
    );
  });
  let outboundPort = 0;
  // The same with the accepted socket reading into a fixed buffer, as the agent's outbound listener does.
  let zeroCopy = false;
  const outboundZc = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    const direction = new Direction(32 * 1024);
    direction.copyBelow = 16 * 1024;
    const socket = adoptAccepted(accepted, direction);
    socket.on('error', () => {});
    pool.connect(request({ newSocket: clientFd })).then(
      ({ stream }) => relayStream(socket, stream, { onClose: (r) => clientRelays.push(r), zeroCopy: { socket, direction } }),
      () => socket.resetAndDestroy(),
    );
  });
  let outboundZcPort = 0;

  before(async () => {
    echoPort = await listen(echo);
    earlyPort = await listen(early);
    outboundPort = await listen(outbound);
    outboundZcPort = await listen(outboundZc);
    hbonePort = (await server.listen({ fd: boundFd() })).port;
  });
  after(async () => {
    await pool.close();
    server.destroy();
    echo.close();
    early.close();
    outbound.close();
    outboundZc.close();
  });

  it('carries 8 MiB byte-exact through one tunnel (TCP → stream → TCP) and counts bytes on both relays', async (t) => {
    const size = 8 * 1024 * 1024;
    const started = process.hrtime.bigint();
    const r = await pump(outboundPort, size);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    t.diagnostic(`8 MiB echoed in ${ms.toFixed(0)} ms: ${((2 * size) / 1048576 / (ms / 1000)).toFixed(1)} MiB/s of tunnelled bytes (both directions)`);
    assert.equal(r.received, size);
    assert.ok(r.intact, 'echoed bytes differ');
    await waitFor('both relays closed', async () => clientRelays.length === 1 && serverRelays.length === 1);
    for (const res of [clientRelays[0]!, serverRelays[0]!]) {
      assert.equal(res.bytesUp, size);
      assert.equal(res.bytesDown, size);
      assert.equal(res.error, null);
    }
    assert.equal(connects[0]!.peerId, CLIENT_ID);
    assert.equal(connects[0]!.peerAddress.ip, '127.0.0.1');
    assert.deepEqual(connects[0]!.authority, { ip: '127.0.0.1', port: echoPort });
  });

  it('relays through fixed read buffers on the TCP ends: small and bulk reads byte-exact, a reader that never reads stalls the sender', async (t) => {
    zeroCopy = true;
    try {
      clientRelays.length = 0;
      serverRelays.length = 0;
      // Bulk: reads of up to 32 KiB go zero-copy; the echo's replies mix small and large reads.
      const size = 8 * 1024 * 1024;
      const r = await pump(outboundZcPort, size);
      assert.equal(r.received, size);
      assert.ok(r.intact, 'echoed bytes differ');
      // Small: many short writes (copied below 16 KiB), one at a time, each echoed back.
      const s = net.connect({ port: outboundZcPort, host: '127.0.0.1', allowHalfOpen: true });
      await new Promise((res) => s.once('connect', res));
      let echoed = Buffer.alloc(0);
      s.on('data', (c: Buffer) => (echoed = Buffer.concat([echoed, c])));
      for (let i = 0; i < 50; i++) {
        const msg = Buffer.from(`request ${i} `.repeat(1 + (i % 7) * 40));
        echoed = Buffer.alloc(0);
        s.write(msg);
        await waitFor(`reply ${i}`, async () => echoed.length >= msg.length);
        assert.ok(echoed.equals(msg), `reply ${i} differs`);
      }
      s.end();
      await new Promise((res) => s.once('close', res));
      await waitFor('all four relays closed', async () => clientRelays.length === 2 && serverRelays.length === 2);
      assert.equal(clientRelays[0]!.bytesUp, size);
      assert.equal(serverRelays[0]!.bytesDown, size);
      for (const res of [...clientRelays, ...serverRelays]) assert.equal(res.error, null);
      assert.equal(clientRelays[1]!.bytesUp, clientRelays[1]!.bytesDown);
      // Stalled: a client that sends and never reads. The echo stops reading once its replies back up, and
      // the relays must stop reading too (no unbounded queue into the HTTP/2 stream): write() turns false.
      const c = net.connect({ port: outboundZcPort, host: '127.0.0.1' });
      await new Promise((res) => c.once('connect', res));
      c.pause();
      const chunk = Buffer.alloc(64 * 1024);
      let written = 0;
      for (let i = 0; i < 2048; i++) {
        if (!c.write(chunk)) {
          // Kernel buffers fill before the relay catches up: give it a moment, then check it is really stuck.
          const drained = await Promise.race([new Promise((res) => c.once('drain', () => res(true))), new Promise((res) => setTimeout(() => res(false), 500))]);
          if (!drained) break;
        }
        written += chunk.length;
      }
      t.diagnostic(`stalled after ${(written / 1048576).toFixed(1)} MiB`);
      assert.ok(written < 48 * 1024 * 1024, `wrote ${written} bytes into a relay whose reader never reads`);
      c.destroy();
    } finally {
      zeroCopy = false;
    }
  });

  it('runs 100 concurrent streams on a few pooled sessions, respecting the server stream limit', async () => {
    const p = new HboneClientPool({ h2: engine });
    const data = crypto.randomBytes(16 * 1024);
    const conns = await Promise.all(Array.from({ length: 100 }, () => p.connect(request({ sourcePod: 'pod-many' }))));
    const s = p.stats();
    assert.equal(s.activeStreams, 100);
    // The server allows 40 streams per session: 100 streams need exactly 3 sessions, dialled once each.
    assert.equal(s.sessionsOpened, 3);
    for (const ps of s.perSession) assert.ok(ps.streams <= 40);
    const echoed = await Promise.all(conns.map((c) => roundTrip(c.stream, data)));
    for (const e of echoed) assert.ok(e.equals(data));
    await p.close();
  });

  it('refuses a server whose SAN is not the expected identity, saying both', async () => {
    await assert.rejects(pool.connect(request({ expectedServerId: `${TD}/x` })), (err: Error) => {
      assert.ok(err instanceof HboneIdentityMismatchError);
      assert.equal((err as HboneIdentityMismatchError).code, 'NM_HBONE_IDENTITY_MISMATCH');
      assert.match(err.message, new RegExp(`TLS handshake with 127\\.0\\.0\\.1:${hbonePort} failed: certificate SAN ${ECHO_ID} does not match expected ${TD}/x`));
      return true;
    });
  });

  it('is refused by the server with a foreign-CA, expired, or SAN-less client certificate, told why', async () => {
    const before = server.stats();
    const cases: Array<[CertBundle, RegExp]> = [
      [{ ...foreign.issue({ spiffeId: CLIENT_ID }), rootsPem: [ca.rootPem] }, /certificate not issued by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/],
      [ca.issueExpired(CLIENT_ID), /certificate expired \(CERT_HAS_EXPIRED\)/],
      [ca.issue({ spiffeId: CLIENT_ID, uris: [CLIENT_ID, `${TD}/other`] }), /2 SPIFFE URI SANs/],
      [ca.issue({ spiffeId: CLIENT_ID, uris: [] }), /certificate has no SPIFFE URI SAN/],
    ];
    for (const [source, reason] of cases) {
      await assert.rejects(pool.connect(request({ source })), (err: Error) => {
        assert.ok(err instanceof HboneClientRejectedError, `${err.name}: ${err.message}`);
        assert.equal((err as HboneClientRejectedError).code, 'NM_HBONE_CLIENT_REJECTED');
        assert.match(err.message, reason);
        return true;
      });
    }
    const after = server.stats();
    assert.equal(after.clientsRefused - before.clientsRefused, 4);
    assert.equal(after.sessionsAccepted, before.sessionsAccepted, 'a refused client never gets an HTTP/2 session');
  });

  it('is refused by the server without a client certificate', async () => {
    const before = server.stats().clientsRefused;
    const session = http2.connect(`https://127.0.0.1:${hbonePort}`, { ca: [ca.rootPem], checkServerIdentity: () => undefined });
    const [code, , data] = await new Promise<[number, number, Buffer | undefined]>((resolve) => {
      session.on('goaway', (...args: [number, number, Buffer | undefined]) => resolve(args));
      session.on('error', () => {});
    });
    session.destroy();
    assert.equal(code, http2.constants.NGHTTP2_INADEQUATE_SECURITY);
    assert.equal(data?.toString(), 'no client certificate presented');
    assert.equal(server.stats().clientsRefused, before + 1);
  });

  it('answers 400 to a non-CONNECT request and to a bad authority, without the handler', async () => {
    const calls = connects.length;
    const session = http2.connect(`https://127.0.0.1:${hbonePort}`, {
      key: clientCert.keyPem,
      cert: clientCert.chainPem.join('\n'),
      ca: [ca.rootPem],
      checkServerIdentity: () => undefined,
    });
    const ask = (headers: http2.OutgoingHttpHeaders): Promise<http2.IncomingHttpHeaders> =>
      new Promise((resolve, reject) => {
        const req = session.request(headers, { endStream: false });
        req.on('response', resolve);
        req.on('error', reject);
      });
    const get = await ask({ ':method': 'GET', ':path': '/' });
    assert.equal(get[':status'], 400);
    assert.match(String(get[HBONE_REASON_HEADER]), /only CONNECT/);
    for (const authority of ['example.com:80', '127.0.0.1', '127.0.0.1:70000', '::1:80']) {
      const h = await ask({ ':method': 'CONNECT', ':authority': authority });
      assert.equal(h[':status'], 400, authority);
      assert.match(String(h[HBONE_REASON_HEADER]), /malformed :authority/);
    }
    session.close();
    assert.equal(connects.length, calls);
    // Through the pool, the status reaches the caller as an error.
    await assert.rejects(pool.connect(request({ target: { ip: 'example.com', port: 80 } })), (err: Error) => {
      assert.ok(err instanceof HboneConnectRefusedError);
      assert.equal((err as HboneConnectRefusedError).status, 400);
      return true;
    });
  });

  it('brings a handler 403 or an upstream refusal to the client with status and reason', async () => {
    policy = (ctx, respond) => {
      if (ctx.peerId !== `${TD}/admin`) {
        respond(403, `${ctx.peerId} is not allowed`);
        return false;
      }
      return true;
    };
    try {
      await assert.rejects(pool.connect(request()), (err: Error) => {
        assert.ok(err instanceof HboneConnectRefusedError);
        assert.equal((err as HboneConnectRefusedError).code, 'NM_HBONE_CONNECT_REFUSED');
        assert.equal((err as HboneConnectRefusedError).status, 403);
        assert.equal((err as HboneConnectRefusedError).reason, `${CLIENT_ID} is not allowed`);
        assert.match(err.message, /answered 403: .* is not allowed \(check the destination's AuthorizationPolicy/);
        return true;
      });
    } finally {
      policy = () => true;
    }
    const closed = net.createServer();
    const closedPort = await listen(closed);
    await new Promise((r) => closed.close(r));
    await assert.rejects(pool.connect(request({ target: { ip: '127.0.0.1', port: closedPort } })), /answered 503: upstream ECONNREFUSED/);
  });

  it('half-closes both ways: the app ends first and the client still sends', async () => {
    const { stream } = await pool.connect(request({ target: { ip: '127.0.0.1', port: earlyPort } }));
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks)));
      onFault(stream, reject);
      stream.resume();
    });
    assert.equal(got.toString(), 'hello');
    const n = afterFin.length;
    stream.write(Buffer.from('written after the server FIN'));
    stream.end();
    await waitFor('app got the bytes sent after its FIN', async () => afterFin.length === n + 1);
    assert.equal(afterFin[n]!.toString(), 'written after the server FIN');
  });

  it('turns a client reset into RST_STREAM(CONNECT_ERROR) and an upstream reset', async () => {
    const n = serverRelays.length;
    const s = net.connect({ host: '127.0.0.1', port: outboundPort });
    s.write('x'.repeat(1000));
    await readSome(s, 1000);
    s.resetAndDestroy();
    await waitFor('server relay closed', async () => serverRelays.length === n + 1);
    const res = serverRelays[n]!;
    assert.equal(res.failedSide, 'downstream');
    assert.ok(res.error instanceof HboneStreamResetError);
    assert.equal((res.error as HboneStreamResetError).rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
  });

  it('closes idle sessions after the idle timeout', async () => {
    const p = new HboneClientPool({ idleTimeoutMs: 100, h2: engine });
    const c = await p.connect(request({ sourcePod: 'pod-idle' }));
    assert.equal((await roundTrip(c.stream, Buffer.from('x'))).toString(), 'x');
    await waitFor('idle session closed', async () => p.stats().sessions === 0, 3_000);
    await p.close();
  });

  it('closes gracefully: GOAWAY, open streams finish, no new connections', async () => {
    const s2 = new HboneServer({
      identity: () => serverCert,
      trustBundle: () => [ca.rootPem],
      h2: engine,
      onConnect: (ctx, respond) => {
        respond(200);
        echoStream(ctx.stream);
      },
    });
    const addr = await s2.listen({ host: '127.0.0.1', port: 0 });
    const p = new HboneClientPool({ h2: engine });
    const held = await p.connect(request({ sourcePod: 'pod-drain', address: addr }));
    let closed = false;
    const closing = s2.close().then(() => (closed = true));
    await waitFor('client saw GOAWAY', async () => p.stats().perSession.every((x) => x.draining));
    assert.equal(closed, false);
    await assert.rejects(p.connect(request({ sourcePod: 'pod-drain', address: addr })), { code: 'NM_HBONE_CONNECT' });
    assert.equal((await roundTrip(held.stream, Buffer.from('last words'))).toString(), 'last words');
    await closing;
    await p.close();
  });

  it('opens a new session for a rotated source certificate while an old stream keeps flowing', async () => {
    const p = new HboneClientPool({ h2: engine });
    const old = await p.connect(request({ sourcePod: 'pod-rot' }));
    old.stream.write(Buffer.from('before'));
    assert.equal((await readSome(old.stream, 6)).toString(), 'before');
    const again = await p.connect(request({ sourcePod: 'pod-rot' }));
    assert.ok(again.reused);
    assert.equal(again.sessionId, old.sessionId);
    again.stream.reset();

    clientCert = ca.issue({ spiffeId: CLIENT_ID });
    const fresh = await p.connect(request({ sourcePod: 'pod-rot' }));
    assert.equal(fresh.reused, false);
    assert.notEqual(fresh.sessionId, old.sessionId);
    assert.equal(p.stats().sessions, 2);
    old.stream.resume();
    const rest = await roundTrip(old.stream, Buffer.from('after rotation'));
    assert.equal(rest.toString(), 'after rotation');
    assert.equal((await roundTrip(fresh.stream, Buffer.from('new'))).toString(), 'new');
    await p.close();
  });

  it('presents an updated server identity on new handshakes while open sessions keep theirs', async () => {
    const p = new HboneClientPool({ h2: engine });
    const held = await p.connect(request({ sourcePod: 'pod-srv-rot' }));
    const peerSerial = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: hbonePort,
          key: clientCert.keyPem,
          cert: clientCert.chainPem.join('\n'),
          ca: [ca.rootPem],
          ALPNProtocols: ['h2'],
          checkServerIdentity: () => undefined,
        });
        s.on('secureConnect', () => {
          resolve(s.getPeerCertificate().serialNumber.toLowerCase());
          s.destroy();
        });
        s.on('error', reject);
      });
    assert.equal(await peerSerial(), serverCert.serial.toLowerCase());
    // Rotate to a certificate from an intermediate of the same root, with a new serial.
    const inter = createTestCa({ name: 'rotated root', intermediate: true });
    const oldSerial = serverCert.serial;
    serverCert = ca.issue({ spiffeId: ECHO_ID });
    server.updateIdentity();
    assert.equal(await peerSerial(), serverCert.serial.toLowerCase());
    assert.notEqual(serverCert.serial, oldSerial);
    // An identity the clients do not expect takes effect too: new dials see it and refuse.
    serverCert = inter.issue({ spiffeId: `${TD}/impostor` });
    server.updateIdentity();
    await assert.rejects(new HboneClientPool({ h2: engine }).connect(request({ source: { ...clientCert, rootsPem: [ca.rootPem, inter.rootPem] } })), HboneIdentityMismatchError);
    serverCert = ca.issue({ spiffeId: ECHO_ID });
    server.updateIdentity();
    assert.equal((await roundTrip(held.stream, Buffer.from('still here'))).toString(), 'still here');
    await p.close();
  });
});
