// RFC 9113 cases and flood bounds of the HBONE HTTP/2 session, each driven by a raw frame writer over loopback.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { ErrorCode, Flag, FrameType, Setting, frame } from '../../src/proxy/hbone/h2/constants';
import { type H2Counters, newH2Counters } from '../../src/proxy/hbone/h2/h2-counters';
import { PeerBudget } from '../../src/proxy/hbone/h2/peer-budget';
import { H2Session, type H2SessionOptions } from '../../src/proxy/hbone/h2/session';
import type { H2Stream } from '../../src/proxy/hbone/h2/stream';
import { CONNECT, RawPeer, u32 } from '../helpers/h2-raw-peer';
import { listen } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

const WINDOWS = { streamWindow: 64 * 1024, connectionWindow: 256 * 1024 };
const GET: Array<[string, string]> = [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', 'example.test'],
  [':path', '/'],
];

interface Served {
  port: number;
  sessions: H2Session[];
  streams: H2Stream[];
  counters: H2Counters;
}

describe('HTTP/2 session: RFC 9113 stream states, malformed messages, flood and memory bounds', () => {
  const cleanup: Array<() => void> = [];
  after(() => {
    for (const c of cleanup.reverse()) c();
  });

  /**
   * Our server on loopback. Streams carrying `x-end` are answered with END_STREAM at once; the others are held
   * open and never read, unless `read` is set.
   */
  async function serve(extra: Partial<H2SessionOptions> = {}, read = false): Promise<Served> {
    const served: Served = { port: 0, sessions: [], streams: [], counters: extra.counters ?? newH2Counters() };
    const server = net.createServer((socket) => {
      const session = new H2Session(socket, { role: 'server', ...WINDOWS, maxConcurrentStreams: 8, ...extra, counters: served.counters });
      session.on('error', () => {});
      session.on('stream', (stream: H2Stream) => {
        served.streams.push(stream);
        if (stream.headers['x-end'] !== undefined) stream.respond({ ':status': '200' }, true);
        if (read) stream.resume();
      });
      served.sessions.push(session);
    });
    served.port = await listen(server);
    cleanup.push(() => {
      for (const s of served.sessions) s.destroy();
      server.close();
    });
    return served;
  }

  function peer(port: number): RawPeer {
    const p = new RawPeer(port);
    cleanup.push(() => p.destroy());
    p.start();
    p.ack();
    return p;
  }

  async function alive(p: RawPeer): Promise<void> {
    p.write(frame(FrameType.PING, 0, 0, Buffer.from('still-up')));
    await p.next('PING ACK', (f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.toString() === 'still-up');
    assert.equal(p.frames.some((f) => f.type === FrameType.GOAWAY), false);
  }

  describe('stream states (§5.1)', () => {
    it('HEADERS on a half-closed (remote) stream is STREAM_CLOSED, not trailers', async () => {
      const { port } = await serve();
      const p = peer(port);
      p.write(p.headers(1, CONNECT, Flag.END_HEADERS | Flag.END_STREAM));
      p.write(p.headers(1, [['x-trailer', 'late']], Flag.END_HEADERS | Flag.END_STREAM));
      assert.equal(await p.reset(1), ErrorCode.STREAM_CLOSED);
      await alive(p);
    });

    it('DATA or HEADERS after the peer reset the stream is a stream error STREAM_CLOSED', async () => {
      const { port } = await serve();
      const p = peer(port);
      p.write(p.headers(1, CONNECT), frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)), frame(FrameType.DATA, 0, 1, Buffer.from('late')));
      assert.equal(await p.reset(1), ErrorCode.STREAM_CLOSED);
      p.write(p.headers(3, CONNECT), frame(FrameType.RST_STREAM, 0, 3, u32(ErrorCode.CANCEL)), p.headers(3, [['x-trailer', 'late']], Flag.END_HEADERS | Flag.END_STREAM));
      assert.equal(await p.reset(3), ErrorCode.STREAM_CLOSED);
      await alive(p);
    });

    it('DATA after both sides ended the stream is a connection error STREAM_CLOSED', async () => {
      const { port } = await serve({}, true);
      const p = peer(port);
      p.write(p.headers(1, [...CONNECT, ['x-end', '1']], Flag.END_HEADERS | Flag.END_STREAM));
      await p.next('the answer with END_STREAM', (f) => f.type === FrameType.HEADERS && f.stream === 1 && (f.flags & Flag.END_STREAM) !== 0);
      p.write(frame(FrameType.DATA, 0, 1, Buffer.from('late')));
      const g = await p.goaway();
      assert.equal(g.code, ErrorCode.STREAM_CLOSED);
      assert.match(g.debug, /both sides had ended/);
    });

    it('frames in flight on a stream we reset are ignored, and the session keeps serving', async () => {
      const { port } = await serve({ maxConcurrentStreams: 1 });
      const p = peer(port);
      p.write(p.headers(1, CONNECT), p.headers(3, CONNECT));
      assert.equal(await p.reset(3), ErrorCode.REFUSED_STREAM);
      p.write(frame(FrameType.DATA, 0, 3, Buffer.from('in flight')), frame(FrameType.WINDOW_UPDATE, 0, 3, u32(10)), frame(FrameType.RST_STREAM, 0, 3, u32(ErrorCode.CANCEL)));
      await alive(p);
      assert.equal(p.frames.filter((f) => f.type === FrameType.RST_STREAM && f.stream === 3).length, 1, 'no second reset for frames that crossed ours');
    });

    it('HEADERS on a stream id below one already used is a connection PROTOCOL_ERROR (§5.1.1)', async () => {
      const { port } = await serve();
      const p = peer(port);
      p.write(p.headers(5, CONNECT), p.headers(3, CONNECT));
      const g = await p.goaway();
      assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
      assert.match(g.debug, /already passed/);
    });

    it('remembers a bounded number of closed streams', async () => {
      const { port, sessions } = await serve({ maxConcurrentStreams: 4000, maxPeerResetsPerSecond: 5000 });
      const p = peer(port);
      // 1,500 streams opened and reset by the peer: more than the memory holds (1,024).
      const parts: Buffer[] = [];
      for (let i = 0; i < 1500; i++) parts.push(p.headers(2 * i + 1, CONNECT), frame(FrameType.RST_STREAM, 0, 2 * i + 1, u32(ErrorCode.CANCEL)));
      p.write(...parts);
      await waitFor('streams accepted and reset', async () => sessions[0]?.activeStreams === 0 && p.frames.length > 0, 3_000);
      const closedStreams = (sessions[0] as unknown as { closedStreams: { size: number } }).closedStreams;
      await waitFor('all 1,500 seen', async () => closedStreams.size === 1024, 3_000);
      // The oldest fell out: DATA there is answered by the id rule alone (a stream error), recent ones by their closure.
      p.write(frame(FrameType.DATA, 0, 1, Buffer.from('x')), frame(FrameType.DATA, 0, 2999, Buffer.from('x')));
      assert.equal(await p.reset(1), ErrorCode.STREAM_CLOSED);
      assert.equal(await p.reset(2999), ErrorCode.STREAM_CLOSED);
    });
  });

  describe('priority (§5.3.1)', () => {
    it('a HEADERS frame that depends on its own stream is a stream PROTOCOL_ERROR', async () => {
      const { port, streams } = await serve();
      const p = peer(port);
      const block = p.encoder.encode(CONNECT);
      p.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY, 1, Buffer.concat([u32(1), Buffer.from([16]), block])));
      assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
      assert.equal(streams.length, 0, 'never handed to the application');
      await alive(p);
    });

    it('a PRIORITY frame that depends on its own stream is a stream PROTOCOL_ERROR', async () => {
      const { port } = await serve();
      const p = peer(port);
      p.write(p.headers(1, CONNECT), frame(FrameType.PRIORITY, 0, 1, Buffer.concat([u32(1), Buffer.from([16])])));
      assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
      await alive(p);
    });
  });

  describe('malformed messages (§8.1, §8.2, §8.3)', () => {
    const malformed: Array<[string, Array<[string, string]>]> = [
      ['an empty :path', [[':method', 'GET'], [':scheme', 'https'], [':authority', 'a'], [':path', '']]],
      ['a space in a field name', [...CONNECT, ['x bad', 'v']]],
      ['a colon inside a field name', [...CONNECT, ['x:bad', 'v']]],
      ['a DEL in a field name', [...CONNECT, ['x\x7fbad', 'v']]],
      ['a value with leading whitespace', [...CONNECT, ['x-v', ' v']]],
      ['a value with trailing whitespace', [...CONNECT, ['x-v', 'v\t']]],
      ['a content-length that is not a number', [...GET, ['content-length', '1e3']]],
    ];
    for (const [what, fields] of malformed) {
      it(`a request with ${what} is reset with PROTOCOL_ERROR`, async () => {
        const { port, streams } = await serve();
        const p = peer(port);
        p.write(p.headers(1, fields, Flag.END_HEADERS | Flag.END_STREAM));
        assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
        assert.equal(streams.length, 0);
      });
    }

    it('DATA beyond the content-length, or short of it at END_STREAM, is PROTOCOL_ERROR; an exact body ends cleanly', async () => {
      const { port, streams } = await serve({}, true);
      const p = peer(port);
      p.write(p.headers(1, [...GET, ['content-length', '2']]), frame(FrameType.DATA, 0, 1, Buffer.from('abc')));
      assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
      p.write(p.headers(3, [...GET, ['content-length', '5']]), frame(FrameType.DATA, 0, 3, Buffer.from('abc')), frame(FrameType.DATA, Flag.END_STREAM, 3, Buffer.from('d')));
      assert.equal(await p.reset(3), ErrorCode.PROTOCOL_ERROR);
      p.write(p.headers(5, [...GET, ['content-length', '5']], Flag.END_HEADERS | Flag.END_STREAM));
      assert.equal(await p.reset(5), ErrorCode.PROTOCOL_ERROR);
      p.write(p.headers(7, [...GET, ['content-length', '4']]), frame(FrameType.DATA, 0, 7, Buffer.from('ab')), frame(FrameType.DATA, Flag.END_STREAM, 7, Buffer.from('cd')));
      await waitFor('stream 7 ended after its 4 bytes', async () => streams.find((s) => s.id === 7)?.remoteEnded === true, 3_000);
      assert.equal(p.frames.some((f) => f.type === FrameType.RST_STREAM && f.stream === 7), false);
    });

    it('trailers with a pseudo-header, or without END_STREAM, are PROTOCOL_ERROR; valid trailers end the stream', async () => {
      const { port, streams } = await serve({}, true);
      const p = peer(port);
      p.write(p.headers(1, CONNECT), p.headers(1, [[':path', '/x']], Flag.END_HEADERS | Flag.END_STREAM));
      assert.equal(await p.reset(1), ErrorCode.PROTOCOL_ERROR);
      p.write(p.headers(3, CONNECT), p.headers(3, [['x-trailer', 'v']]));
      assert.equal(await p.reset(3), ErrorCode.PROTOCOL_ERROR);
      p.write(p.headers(5, CONNECT), p.headers(5, [['x-trailer', 'v']], Flag.END_HEADERS | Flag.END_STREAM));
      await waitFor('stream 5 ended by its trailers', async () => streams.find((s) => s.id === 5)?.remoteEnded === true, 3_000);
      assert.equal(p.frames.some((f) => f.type === FrameType.RST_STREAM && f.stream === 5), false);
    });
  });

  it('advertises no SETTINGS_MAX_FRAME_SIZE above its windows: a maximal DATA frame is accepted (§4.2, §6.9.1)', async () => {
    const { port, streams } = await serve({ maxFrameSize: 1 << 20 });
    const p = peer(port);
    const advertised = (await p.serverSettings()).get(Setting.MAX_FRAME_SIZE)!;
    assert.equal(advertised, WINDOWS.streamWindow);
    const got: Buffer[] = [];
    p.write(p.headers(1, CONNECT), frame(FrameType.DATA, 0, 1, Buffer.alloc(advertised, 7)));
    await waitFor('stream 1', async () => streams.length === 1, 3_000);
    streams[0]!.on('data', (c: Buffer) => got.push(Buffer.from(c)));
    streams[0]!.resume();
    await waitFor('the whole frame delivered', async () => Buffer.concat(got).length === advertised, 3_000);
    await alive(p);
  });

  it('ends a session whose peer never acknowledges our SETTINGS with SETTINGS_TIMEOUT, and counts it', async () => {
    const { port, counters } = await serve({ settingsTimeoutMs: 300 });
    const silent = new RawPeer(port);
    cleanup.push(() => silent.destroy());
    silent.start();
    const polite = peer(port);
    const g = await silent.goaway();
    assert.equal(g.code, ErrorCode.SETTINGS_TIMEOUT);
    assert.equal(counters.settingsTimeouts, 1);
    await new Promise((r) => setTimeout(r, 400));
    await alive(polite);
  });

  describe('floods end the session with ENHANCE_YOUR_CALM and are counted', () => {
    const many = (n: number, f: (i: number) => Buffer): Buffer[] => Array.from({ length: n }, (_, i) => f(i));
    const floods: Array<[string, Partial<H2SessionOptions>, (p: RawPeer) => Buffer[], keyof H2Counters['floods'], RegExp]> = [
      [
        'resets we are made to send (WINDOW_UPDATE of 0 on each new stream: made-you-reset)',
        { maxPeerResetsPerSecond: 50, maxConcurrentStreams: 1000 },
        (p) => many(60, (i) => Buffer.concat([p.headers(2 * i + 1, CONNECT), frame(FrameType.WINDOW_UPDATE, 0, 2 * i + 1, u32(0))])),
        'resets',
        /reset by the peer in a second/,
      ],
      ['malformed requests, each reset with PROTOCOL_ERROR', { maxPeerResetsPerSecond: 50 }, (p) => many(60, (i) => p.headers(2 * i + 1, [...CONNECT, ['X-Upper', 'v']])), 'resets', /reset by the peer/],
      ['streams past the concurrency limit, each REFUSED_STREAM', { maxPeerResetsPerSecond: 50, maxConcurrentStreams: 1 }, (p) => many(60, (i) => p.headers(2 * i + 1, CONNECT)), 'resets', /reset by the peer/],
      ['empty DATA frames', {}, (p) => [p.headers(1, CONNECT), ...many(1100, () => frame(FrameType.DATA, 0, 1))], 'idle_frames', /empty DATA/],
      ['unknown frame types', {}, () => many(1100, () => frame(0xfa, 0, 0, Buffer.from('x'))), 'idle_frames', /frame type 250/],
      ['PRIORITY frames', {}, () => many(1100, (i) => frame(FrameType.PRIORITY, 0, 2 * i + 1, Buffer.concat([u32(0), Buffer.from([16])]))), 'idle_frames', /PRIORITY/],
      ['PINGs, even when their answers are read', {}, () => many(150, () => frame(FrameType.PING, 0, 0, Buffer.alloc(8))), 'ping', /PINGs in a second/],
      ['SETTINGS frames', {}, () => many(150, () => frame(FrameType.SETTINGS, 0, 0)), 'settings', /SETTINGS frames in a second/],
      ['endless CONTINUATION frames', {}, (p) => [p.headers(1, CONNECT, 0), ...many(3000, () => frame(FrameType.CONTINUATION, 0, 1))], 'header_block', /header block over/],
    ];
    for (const [what, opts, act, kind, reason] of floods) {
      it(what, async () => {
        const { port, counters } = await serve(opts);
        const p = peer(port);
        p.write(...act(p));
        const g = await p.goaway();
        assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
        assert.match(g.debug, reason);
        assert.equal(counters.floods[kind], 1);
        assert.equal(counters.connectionErrors, 1);
      });
    }

    it('counts the resets a peer sends and those it provokes against all its sessions together', async () => {
      const budget = new PeerBudget(1 << 30, 40);
      const { port, counters } = await serve({ peerBudget: budget, maxPeerResetsPerSecond: 1000, maxConcurrentStreams: 1000 });
      const a = peer(port);
      const b = peer(port);
      // 25 resets on each session: under the session allowance (1000), over the peer's (40) together.
      a.write(...many(25, (i) => Buffer.concat([a.headers(2 * i + 1, CONNECT), frame(FrameType.RST_STREAM, 0, 2 * i + 1, u32(ErrorCode.CANCEL))])));
      await waitFor('session a counted', async () => counters.resetsReceived === 25, 3_000);
      b.write(...many(25, (i) => Buffer.concat([b.headers(2 * i + 1, CONNECT), frame(FrameType.WINDOW_UPDATE, 0, 2 * i + 1, u32(0))])));
      const g = await b.goaway();
      assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
      assert.match(g.debug, /all of this peer's sessions/);
      assert.ok(counters.resetsProvoked >= 15);
    });
  });

  describe('memory held for slow readers is bounded per session and per peer', () => {
    /** Our client writes `perStream` bytes on each of `n` streams; the server reads none of them. */
    async function fill(port: number, n: number, perStream: number): Promise<{ client: H2Session; streams: H2Stream[] }> {
      const client = await new Promise<H2Session>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port }, () => {
          const s = new H2Session(socket, { role: 'client', ...WINDOWS });
          s.once('remoteSettings', () => resolve(s));
        });
        socket.once('error', reject);
      });
      cleanup.push(() => client.destroy());
      const streams = Array.from({ length: n }, () => client.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:9' }));
      for (const s of streams) s.write(Buffer.alloc(perStream, 1));
      return { client, streams };
    }

    it('a session stops crediting the connection once it holds its limit, and resumes as readers catch up', async () => {
      const { port, sessions, streams, counters } = await serve({ maxHeldBytes: 64 * 1024 });
      const { streams: sent } = await fill(port, 8, 64 * 1024);
      // 8 streams × 64 KiB would be 512 KiB held; the session holds at most its limit, one frame more (the one
      // that crossed it), and the connection window the client already had.
      await waitFor('the session holds what it was allowed', async () => sessions[0]!.heldBytes >= 64 * 1024, 3_000);
      await new Promise((r) => setTimeout(r, 300));
      const held = sessions[0]!.heldBytes;
      assert.ok(held <= 64 * 1024 + sessions[0]!.localMaxFrameSize + WINDOWS.connectionWindow, `held ${held}`);
      assert.ok(held < 8 * 64 * 1024, `held ${held}: not everything`);
      assert.ok(counters.creditHeldBack >= 1);
      assert.ok(sent.some((s) => s.queuedBytes > 0), 'the client is held back by flow control');
      // Readers catch up: everything arrives.
      let total = 0;
      for (const s of streams) {
        s.on('data', (c: Buffer) => (total += c.length));
        s.resume();
      }
      await waitFor('all 512 KiB delivered', async () => total === 8 * 64 * 1024, 5_000);
    });

    it("a peer's sessions share one limit: a second session is held back by what the first holds", async () => {
      const budget = new PeerBudget(64 * 1024, 1000);
      const { port, counters } = await serve({ peerBudget: budget, maxHeldBytes: 1 << 30 });
      await fill(port, 4, 64 * 1024);
      await waitFor('the first session holds over the peer limit', async () => budget.held > 64 * 1024, 3_000);
      const before = counters.creditHeldBack;
      await fill(port, 1, 16 * 1024);
      await waitFor('the second session held back too', async () => counters.creditHeldBack > before, 3_000);
    });
  });
});
