import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CLIENT_PREFACE, ErrorCode, FRAME_HEADER_LENGTH, Flag, FrameType, H2PeerSilentError, frame } from '../../src/proxy/hbone/h2/constants';
import { HpackDecoder } from '../../src/proxy/hbone/h2/hpack';
import { H2Session, type H2SessionOptions } from '../../src/proxy/hbone/h2/session';
import { relayStream } from '../../src/proxy/hbone/stream-relay';
import { READ_HEADROOM, type RelayResult } from '../../src/proxy/relay';
import type { H2Stream } from '../../src/proxy/hbone/h2/stream';
import { CONNECT, RawPeer, u32 } from '../helpers/h2-raw-peer';
import { listen } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

// Small windows, so every transfer below crosses flow control many times in both directions.
const WINDOWS = { streamWindow: 64 * 1024, connectionWindow: 256 * 1024 };
const TARGET = '127.0.0.1:9';

/** Everything the stream delivers until the peer's END_STREAM; rejects if it closes with a fault first. */
function collect(stream: H2Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => reject(stream.error ?? new Error(`stream closed (HTTP/2 error code ${stream.rstCode})`)));
    stream.resume();
  });
}

/** The final response headers; rejects if the stream closes first. */
function response(stream: H2Stream): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('close', () => reject(stream.error ?? new Error(`stream closed before its response (HTTP/2 error code ${stream.rstCode})`)));
  });
}

/** Writes `data` in 16 KiB pieces, honouring write()'s backpressure, then ends the stream. */
async function send(stream: H2Stream, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 16 * 1024) {
    if (!stream.write(data.subarray(at, at + 16 * 1024))) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
}

function echo(stream: H2Stream): void {
  stream.on('data', (c: Buffer) => stream.write(Buffer.from(c)));
  stream.on('end', () => stream.end());
  stream.resume();
}

function ourClient(port: number, extra: Partial<H2SessionOptions> = {}): Promise<H2Session> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      const session = new H2Session(socket, { role: 'client', ...WINDOWS, ...extra });
      session.once('remoteSettings', () => resolve(session));
    });
    socket.once('error', reject);
  });
}

describe('HTTP/2 framer of the HBONE path', () => {
  const cleanup: Array<() => void> = [];
  after(() => {
    for (const c of cleanup.reverse()) c();
  });

  /** Our server on loopback; `onStream` gets each accepted stream. */
  async function ourServer(
    onStream: (s: H2Stream) => void,
    maxConcurrentStreams = 4,
    extra: Partial<H2SessionOptions> = {},
  ): Promise<{ port: number; sessions: H2Session[] }> {
    const sessions: H2Session[] = [];
    const server = net.createServer((socket) => {
      const session = new H2Session(socket, { role: 'server', ...WINDOWS, maxConcurrentStreams, ...extra });
      session.on('error', () => {});
      session.on('stream', onStream);
      sessions.push(session);
    });
    const port = await listen(server);
    cleanup.push(() => {
      for (const s of sessions) s.destroy();
      server.close();
    });
    return { port, sessions };
  }

  /** Our client on a session to Node's http2 server, which answers 200 and echoes every stream. */
  async function throughNodeEcho(settings: http2.Settings): Promise<{ session: H2Session; seen: http2.IncomingHttpHeaders[]; nodeSessions: http2.ServerHttp2Session[] }> {
    const node = http2.createServer({ settings });
    const seen: http2.IncomingHttpHeaders[] = [];
    const nodeSessions: http2.ServerHttp2Session[] = [];
    node.on('session', (s) => nodeSessions.push(s));
    node.on('stream', (stream, headers) => {
      seen.push(headers);
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
    });
    const port = await listen(node);
    cleanup.push(() => node.close());
    const session = await ourClient(port);
    cleanup.push(() => session.destroy());
    return { session, seen, nodeSessions };
  }

  it('writeFramed: a chunk sent as one frame leaves as one Buffer, its header in the lent bytes; split ones fall back', async () => {
    const node = http2.createServer({ settings: { initialWindowSize: 16 * 1024 } });
    node.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
    });
    const port = await listen(node);
    cleanup.push(() => node.close());
    const socket = net.connect({ host: '127.0.0.1', port });
    const writes: Buffer[] = [];
    const write = socket.write.bind(socket) as (chunk: Buffer, cb?: () => void) => boolean;
    (socket as unknown as { write: typeof write }).write = (chunk, cb) => {
      writes.push(chunk);
      return write(chunk, cb);
    };
    await new Promise((r) => socket.once('connect', r));
    const session = new H2Session(socket, { role: 'client', ...WINDOWS });
    cleanup.push(() => session.destroy());
    await new Promise((r) => session.once('remoteSettings', r));
    const stream = session.request({ ':method': 'CONNECT', ':authority': TARGET });
    assert.equal((await response(stream))[':status'], '200');
    const got = collect(stream);

    // What the relay lends (relay.ts) must hold a frame header.
    assert.ok(READ_HEADROOM >= FRAME_HEADER_LENGTH);
    // 1 KiB with 9 lent bytes before it: one frame, written in place.
    const small = Buffer.alloc(9 + 1024, 0xee).subarray(9);
    crypto.randomFillSync(small);
    await new Promise<void>((resolve) => stream.writeFramed(small, () => resolve()));
    const framed = writes.find((w) => w.buffer === small.buffer);
    assert.ok(framed, 'the frame went out as one Buffer over the lent bytes and the payload');
    assert.equal(framed.byteOffset, small.byteOffset - 9);
    assert.equal(framed.length, 9 + 1024);
    assert.deepEqual([framed.readUIntBE(0, 3), framed[3], framed.readUInt32BE(5)], [1024, FrameType.DATA, stream.id]);
    // 40 KiB against a 16 KiB window: split, so header and pieces are written separately and the payload is untouched.
    const large = Buffer.alloc(9 + 40 * 1024).subarray(9);
    crypto.randomFillSync(large);
    const before = Buffer.from(large.buffer, large.byteOffset - 9, 9);
    const lent = Buffer.from(before);
    await new Promise<void>((resolve) => stream.writeFramed(large, () => resolve()));
    assert.ok(before.equals(lent), 'the lent bytes of a split chunk are left alone');
    stream.end();
    assert.ok((await got).equals(Buffer.concat([small, large])));
  });

  it("our client through Node's http2 server: concurrent CONNECT tunnels byte-exact under small windows both ways", async () => {
    const { session, seen } = await throughNodeEcho({ initialWindowSize: 16 * 1024 });
    const payloads = [1, 2, 3].map((i) => crypto.randomBytes(i * 512 * 1024));
    const echoed = await Promise.all(
      payloads.map(async (data) => {
        const stream = session.request({ ':method': 'CONNECT', ':authority': TARGET, 'x-tunnel': 'a value long enough for nghttp2' });
        assert.equal((await response(stream))[':status'], '200');
        const got = collect(stream);
        await send(stream, data);
        return got;
      }),
    );
    echoed.forEach((e, i) => assert.ok(e.equals(payloads[i]!), `tunnel ${i} differs`));
    assert.equal(seen.length, 3);
    for (const h of seen) {
      assert.equal(h[':method'], 'CONNECT');
      assert.equal(h[':authority'], TARGET);
      assert.equal(h['x-tunnel'], 'a value long enough for nghttp2');
    }
    await waitFor('streams closed', async () => session.activeStreams === 0);
  });

  it("our client honours Node's stream limit and its graceful GOAWAY: the open stream finishes, new ones are refused", async () => {
    const { session, nodeSessions } = await throughNodeEcho({ maxConcurrentStreams: 1 });
    assert.equal(session.remoteSettings.maxConcurrentStreams, 1);
    const held = session.request({ ':method': 'CONNECT', ':authority': TARGET });
    await response(held);
    assert.throws(() => session.request({ ':method': 'CONNECT', ':authority': TARGET }), /allows 1 concurrent streams/);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    nodeSessions[0]!.close();
    assert.equal(await goaway, ErrorCode.NO_ERROR);
    assert.throws(() => session.request({ ':method': 'CONNECT', ':authority': TARGET }), /closing/);
    const got = collect(held);
    await send(held, Buffer.from('last words'));
    assert.equal((await got).toString(), 'last words');
    await new Promise((r) => (session.destroyed ? r(null) : session.once('close', r)));
  });

  it("our client keeps what came before RST_STREAM(NO_ERROR), and its relay ends the socket cleanly", async () => {
    // Node's server answers, ends its side, then tells us to stop sending (RFC 9113 §8.1), all before we read.
    const node = http2.createServer({ settings: { headerTableSize: 0 } });
    node.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('the whole answer', () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    });
    const port = await listen(node);
    cleanup.push(() => node.close());
    // headerTableSize 0: nghttp2 then insists on a table size update in our next header block.
    const session = await ourClient(port);
    cleanup.push(() => session.destroy());
    const held = session.request({ ':method': 'CONNECT', ':authority': TARGET });
    await response(held);
    await waitFor('stream closed by the peer', async () => held.sentEnd);
    assert.equal((await collect(held)).toString(), 'the whole answer');
    await new Promise((r) => (held.closed ? r(null) : held.once('close', r)));
    assert.equal(held.rstCode, ErrorCode.NO_ERROR);

    // Through the relay: the TCP side gets the answer and a FIN, the relay closes without fault, although the
    // TCP client never ended its side.
    const stream = session.request({ ':method': 'CONNECT', ':authority': TARGET });
    await response(stream);
    const sink = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const sinkPort = await listen(sink);
    cleanup.push(() => sink.close());
    const accepted = new Promise<net.Socket>((r) => sink.once('connection', r));
    const tcp = net.connect({ host: '127.0.0.1', port: sinkPort, allowHalfOpen: true });
    const got: Buffer[] = [];
    tcp.on('data', (c: Buffer) => got.push(c));
    tcp.on('error', () => {});
    const tcpEnded = new Promise((r) => tcp.once('end', r));
    const result = await new Promise<RelayResult>((resolve) => {
      void accepted.then((socket) => relayStream(socket, stream, { onClose: resolve }));
    });
    await tcpEnded;
    tcp.destroy();
    assert.equal(Buffer.concat(got).toString(), 'the whole answer');
    assert.equal(result.error, null);
  });

  it('relays borrowed reads byte-exact into a socket that backs up', async () => {
    // A TCP sink that reads nothing for a while: the relay's writes into it queue up, each still pointing at the
    // chunk it was given, while the session keeps reading.
    let sinkData: Promise<Buffer> | null = null;
    const sink = net.createServer({ allowHalfOpen: true }, (s) => {
      s.pause();
      sinkData = new Promise((resolve) => {
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => {
          resolve(Buffer.concat(chunks));
          s.end();
        });
        setTimeout(() => s.resume(), 300);
      });
    });
    const sinkPort = await listen(sink);
    cleanup.push(() => sink.close());
    const { port, sessions } = await ourServer((stream) => {
      stream.respond({ ':status': '200' });
      const app = net.connect({ host: '127.0.0.1', port: sinkPort, allowHalfOpen: true }, () => {
        relayStream(stream, app, { onClose: () => {} });
      });
    });
    const session = await ourClient(port);
    cleanup.push(() => session.destroy());
    const data = crypto.randomBytes(8 * 1024 * 1024);
    const stream = session.request({ ':method': 'CONNECT', ':authority': TARGET });
    await response(stream);
    await send(stream, data);
    await waitFor('sink connected', async () => sinkData !== null);
    const got = await sinkData!;
    assert.ok(sessions[0]!.borrowedReads, 'this Node supports reading into our own buffer');
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data), 'bytes differ after the sink backed up');
  });

  it('credits the connection window on receipt: streams that are not read cannot starve the session', async () => {
    const streams: H2Stream[] = [];
    const { port } = await ourServer((stream) => {
      streams.push(stream);
      stream.respond({ ':status': '200' });
    }, 100);
    const p = new RawPeer(port);
    cleanup.push(() => p.destroy());
    p.start();
    // Five streams each fill their 64 KiB window and are never read: 320 KiB against a 256 KiB connection window.
    for (const id of [1, 3, 5, 7, 9]) {
      p.write(p.headers(id, CONNECT));
      for (let i = 0; i < 4; i++) p.write(frame(FrameType.DATA, 0, id, Buffer.alloc(16 * 1024, id)));
    }
    await p.next('connection WINDOW_UPDATE', (f) => f.type === FrameType.WINDOW_UPDATE && f.stream === 0);
    await waitFor('five streams', async () => streams.length === 5);
    // A stream that is read still gets its bytes, and the session is healthy.
    p.write(p.headers(11, CONNECT), frame(FrameType.DATA, Flag.END_STREAM, 11, Buffer.from('still flowing')));
    await waitFor('sixth stream', async () => streams.length === 6);
    assert.equal((await collect(streams[5]!)).toString(), 'still flowing');
    // The held ones deliver everything once read.
    const first = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      streams[0]!.on('data', (c: Buffer) => {
        chunks.push(Buffer.from(c));
        if (Buffer.concat(chunks).length === 64 * 1024) resolve(Buffer.concat(chunks));
      });
      streams[0]!.resume();
    });
    assert.ok(first.equals(Buffer.alloc(64 * 1024, 1)));
    assert.equal(p.frames.filter((f) => f.type === FrameType.GOAWAY).length, 0);
  });

  it("Node's http2 client through our server: CONNECT tunnel byte-exact under its small window, PING answered", async () => {
    const headers: Array<Record<string, string>> = [];
    const { port } = await ourServer((stream) => {
      headers.push(stream.headers);
      stream.respond({ ':status': '200' });
      echo(stream);
    });
    const client = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 16 * 1024 } });
    cleanup.push(() => client.destroy());
    await new Promise((r) => client.once('connect', r));
    const rtt = await new Promise<number>((resolve, reject) => client.ping((err, ms) => (err ? reject(err) : resolve(ms))));
    assert.ok(rtt >= 0);
    const data = crypto.randomBytes(2 * 1024 * 1024);
    const req = client.request({ ':method': 'CONNECT', ':authority': TARGET, 'user-agent': 'node-http2-interop' });
    const status = await new Promise((resolve) => req.once('response', (h) => resolve(h[':status'])));
    assert.equal(status, 200);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => req.once('end', r));
    req.end(data);
    await ended;
    assert.ok(Buffer.concat(chunks).equals(data), 'echo differs');
    assert.equal(headers[0]![':authority'], TARGET);
    assert.equal(headers[0]!['user-agent'], 'node-http2-interop');
  });

  describe('keepalive', () => {
    const KEEPALIVE = { idleMs: 100, timeoutMs: 100 };

    it('a live peer is pinged while idle and kept; a server gone silent ends the session and its streams after idle + timeout', async () => {
      const { port } = await ourServer(() => {});
      const live = await ourClient(port, { keepalive: { ...KEEPALIVE, whileIdle: true } });
      cleanup.push(() => live.destroy());
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(live.destroyed, false, 'a peer that answers PINGs is kept');
      assert.ok(live.pingsSent >= 2, `an idle session is pinged (${live.pingsSent} PINGs)`);

      // A server that completes the HTTP/2 start and then sends nothing more (a frozen or vanished peer).
      const silent = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.resume();
        socket.write(frame(FrameType.SETTINGS, 0, 0));
      });
      const silentPort = await listen(silent);
      cleanup.push(() => silent.close());
      const session = await ourClient(silentPort, { keepalive: { ...KEEPALIVE, whileIdle: true } });
      cleanup.push(() => session.destroy());
      const sessionError = new Promise<Error>((resolve) => session.once('error', resolve));
      const started = performance.now();
      const stream = session.request({ ':method': 'CONNECT', ':authority': TARGET });
      const streamClosed = new Promise<Error | null>((resolve) => stream.once('close', () => resolve(stream.error)));
      const err = await sessionError;
      const elapsed = performance.now() - started;
      assert.ok(err instanceof H2PeerSilentError, String(err));
      assert.match(err.message, /sent nothing for at least 200 ms, not even an answer to our PING/);
      assert.ok(elapsed >= 150 && elapsed < 2_000, `ended after ${elapsed.toFixed(0)} ms (idle 100 + timeout 100, at most one more idle)`);
      assert.ok((await streamClosed) instanceof H2PeerSilentError, 'the open stream ends with the same error');
      assert.equal(session.pingsSent, 1);
      await waitFor('socket closed', async () => session.socket.destroyed, 2_000);
    });

    it('a server pings only while streams are open, and a client gone silent ends them', async () => {
      const accepted: H2Stream[] = [];
      const { port: serverPort, sessions } = await ourServer((s) => accepted.push(s), 4, { keepalive: { ...KEEPALIVE, whileIdle: false } });
      const p = new RawPeer(serverPort);
      cleanup.push(() => p.destroy());
      p.start();
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(p.frames.filter((f) => f.type === FrameType.PING).length, 0, 'no PING on a session without streams');
      assert.equal(p.closed, false);

      p.write(p.headers(1, CONNECT));
      await waitFor('stream accepted', async () => accepted.length === 1, 2_000);
      const streamClosed = new Promise<Error | null>((resolve) => accepted[0]!.once('close', () => resolve(accepted[0]!.error)));
      await p.next('a PING once the stream is open and the client is quiet', (f) => f.type === FrameType.PING && !(f.flags & Flag.ACK));
      await waitFor('connection closed by the server', async () => p.closed, 2_000);
      assert.ok((await streamClosed) instanceof H2PeerSilentError, 'the tunnel ends with the silence error');
      assert.equal(sessions[0]!.destroyed, true);
    });
  });

  describe('our server against a peer that breaks the protocol', () => {
    const accepted: H2Stream[] = [];
    let port = 0;
    const peers: RawPeer[] = [];
    const peer = (): RawPeer => {
      const p = new RawPeer(port);
      peers.push(p);
      return p;
    };
    after(() => peers.forEach((p) => p.destroy()));

    before(async () => {
      ({ port } = await ourServer((stream) => {
        accepted.push(stream);
        // Streams asking for an answer get one; the others stay unread, so their window is never credited.
        if (stream.headers['x-answer'] !== undefined) stream.respond({ ':status': '200' });
      }));
    });

    const connectionErrors: Array<[string, (p: RawPeer) => void, number, RegExp]> = [
      ['a bad preface', (p) => p.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), ErrorCode.PROTOCOL_ERROR, /client preface/],
      ['a first frame other than SETTINGS', (p) => p.write(CLIENT_PREFACE, frame(FrameType.PING, 0, 0, Buffer.alloc(8))), ErrorCode.PROTOCOL_ERROR, /must start with SETTINGS/],
      ['DATA on a stream never opened', (p) => (p.start(), p.write(frame(FrameType.DATA, 0, 5, Buffer.from('x')))), ErrorCode.PROTOCOL_ERROR, /never opened/],
      ['a frame over our SETTINGS_MAX_FRAME_SIZE', (p) => (p.start(), p.write(Buffer.from([0x20, 0, 0, 0, 0, 0, 0, 0, 1]))), ErrorCode.FRAME_SIZE_ERROR, /exceeds our maximum/],
      ['a connection window past 2^31-1', (p) => (p.start(), p.write(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)))), ErrorCode.FLOW_CONTROL_ERROR, /past 2\^31-1/],
      [
        'HEADERS followed by something other than CONTINUATION',
        (p) => (p.start(), p.write(p.headers(1, CONNECT, 0), frame(FrameType.PING, 0, 0, Buffer.alloc(8)))),
        ErrorCode.PROTOCOL_ERROR,
        /expected CONTINUATION/,
      ],
      ['an undecodable header block', (p) => (p.start(), p.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0x80])))), ErrorCode.COMPRESSION_ERROR, /bad header block/],
      ['PUSH_PROMISE from a client', (p) => (p.start(), p.write(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, u32(2)))), ErrorCode.PROTOCOL_ERROR, /PUSH_PROMISE/],
      [
        'endless empty CONTINUATION frames',
        (p) => (p.start(), p.write(p.headers(1, CONNECT, 0), ...Array.from({ length: 3000 }, () => frame(FrameType.CONTINUATION, 0, 1)))),
        ErrorCode.ENHANCE_YOUR_CALM,
        /header block over/,
      ],
      [
        'streams opened and reset faster than 1000 a second (rapid reset)',
        (p) => (p.start(), p.write(...Array.from({ length: 1001 }, (_, i) => Buffer.concat([p.headers(2 * i + 1, CONNECT), frame(FrameType.RST_STREAM, 0, 2 * i + 1, u32(ErrorCode.CANCEL))])))),
        ErrorCode.ENHANCE_YOUR_CALM,
        /reset by the peer in a second/,
      ],
    ];
    for (const [what, act, code, reason] of connectionErrors) {
      it(`ends the connection with GOAWAY on ${what}`, async () => {
        const p = peer();
        act(p);
        const g = await p.goaway();
        assert.equal(g.code, code);
        assert.match(g.debug, reason);
      });
    }

    it('resets only the offending stream on stream errors, and the session keeps serving', async () => {
      const p = peer();
      p.start();
      // Malformed request (an uppercase field name): that stream is reset, never reaches the handler.
      const before = accepted.length;
      p.write(p.headers(1, [...CONNECT, ['X-Upper', 'v']]));
      assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
      // A header block split over HEADERS (padded, with priority) and CONTINUATION is reassembled.
      const block = p.encoder.encode([...CONNECT, ['x-answer', 'yes'], ['x-filler', 'f'.repeat(300)]]);
      const first = Buffer.concat([Buffer.from([4]), Buffer.alloc(5), block.subarray(0, 100), Buffer.alloc(4)]);
      p.write(frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 3, first), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, block.subarray(100)));
      const answer = await p.next('200 on stream 3', (f) => f.type === FrameType.HEADERS && f.stream === 3);
      assert.deepEqual(new HpackDecoder().decode(answer.payload).fields, [[':status', '200']]);
      assert.equal(accepted.length, before + 1);
      assert.equal(accepted.at(-1)!.headers['x-filler'], 'f'.repeat(300));
      // DATA past the stream's window (64 KiB, never credited: the handler does not read): that stream is reset.
      for (let i = 0; i < 5; i++) p.write(frame(FrameType.DATA, 0, 3, Buffer.alloc(16 * 1024)));
      assert.equal(await p.reset(3), ErrorCode.FLOW_CONTROL_ERROR);
      // More streams than SETTINGS_MAX_CONCURRENT_STREAMS (4): the fifth open one is refused.
      for (const id of [5, 7, 9, 11, 13]) p.write(p.headers(id, CONNECT));
      assert.equal(await p.reset(13), ErrorCode.REFUSED_STREAM);
      // Still alive: PING is answered with its payload.
      p.write(frame(FrameType.PING, 0, 0, Buffer.from('12345678')));
      const pong = await p.next('PING ACK', (f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
      assert.equal(pong.payload.toString(), '12345678');
      assert.equal(p.closed, false);
      assert.equal(p.frames.filter((f) => f.type === FrameType.GOAWAY).length, 0);
    });
  });
});
