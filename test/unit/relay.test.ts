import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { adoptAccepted, DEFAULT_RELAY_BUFFER, Direction, newUpstream, READ_HEADROOM, RelayResult, startRelay } from '../../src/proxy/relay';
import { echoServer, listen, pump } from '../helpers/tcp';

/** A loopback relay in front of `targetPort`, recording each relay's result. */
function relayServer(targetPort: () => number, results: RelayResult[], bufferSize = 16 * 1024): net.Server {
  return net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
    const up = new Direction(bufferSize);
    const down = new Direction(bufferSize);
    const downstream = adoptAccepted(accepted, up);
    const upstream = newUpstream(null, down);
    startRelay(downstream, upstream, up, down, { onClose: (r) => results.push(r) });
    upstream.connect(targetPort(), '127.0.0.1');
  });
}

describe('relay', () => {
  const echo = echoServer();
  const results: RelayResult[] = [];
  let echoPort = 0;
  let closedPort = 0;
  const proxy = relayServer(() => echoPort, results);
  const refusing = relayServer(() => closedPort, results);
  let proxyPort = 0;
  let refusingPort = 0;

  before(async () => {
    echoPort = await listen(echo);
    // a port with nothing listening: bind, read the port, close
    const tmp = net.createServer();
    closedPort = await listen(tmp);
    await new Promise((r) => tmp.close(r));
    proxyPort = await listen(proxy);
    refusingPort = await listen(refusing);
  });
  after(() => {
    echo.close();
    proxy.close();
    refusing.close();
  });

  it('round-trips 8 MiB byte-exact with half-close and counts bytes both ways', async () => {
    results.length = 0;
    const r = await pump(proxyPort, 8 * 1024 * 1024);
    assert.equal(r.received, r.sent);
    assert.ok(r.intact, 'echoed bytes differ');
    await waitFor(() => results.length === 1);
    assert.equal(results[0]!.bytesUp, 8 * 1024 * 1024);
    assert.equal(results[0]!.bytesDown, 8 * 1024 * 1024);
    assert.equal(results[0]!.error, null);
  });

  it('relays, in order, what an accepted socket read after it was paused, before its handle was adopted', async () => {
    // As protocol detection does: read the first chunk, pause, and set up the upstream meanwhile. A paused
    // net.Socket goes on reading into its own buffer, and those bytes must not be lost with the old wrapper.
    const first = Buffer.alloc(1000, 1);
    const rest = Buffer.alloc(54, 2);
    const tail = Buffer.alloc(4096, 3);
    let sendRest!: () => void;
    const restSent = new Promise<void>((r) => (sendRest = r));
    const detecting = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
      accepted.once('data', (initial: Buffer) => {
        accepted.pause();
        sendRest();
        void (async () => {
          await waitFor(() => accepted.readableLength >= rest.length);
          const up = new Direction(DEFAULT_RELAY_BUFFER);
          const down = new Direction(DEFAULT_RELAY_BUFFER);
          up.preload(initial);
          const upstream = newUpstream(null, down);
          // connected first, as forward.ts does: the preloaded bytes are written when the relay starts
          upstream.connect(echoPort, '127.0.0.1', () => startRelay(adoptAccepted(accepted, up), upstream, up, down, { onClose: () => undefined }));
        })();
      });
      accepted.resume();
    });
    const port = await listen(detecting);
    const got: Buffer[] = [];
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise((r) => c.once('end', r));
    await new Promise((r) => c.once('connect', r));
    c.write(first);
    await restSent;
    c.write(rest);
    // the rest sits in the old wrapper's buffer before the relay starts; the tail comes through the new one
    await new Promise((r) => setTimeout(r, 100));
    c.end(tail);
    await ended;
    assert.deepEqual(Buffer.concat(got), Buffer.concat([first, rest, tail]));
    detecting.close();
  });

  it('carries 50 concurrent connections intact', async () => {
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => pump(proxyPort, 1000 + i * 997)));
    for (const r of all) assert.ok(r.intact);
  });

  it('resets the client when the upstream refuses', async () => {
    results.length = 0;
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const s = net.connect(refusingPort, '127.0.0.1');
      s.on('error', (e) => resolve(e));
      s.on('close', () => resolve(null));
      s.resume();
    });
    assert.equal(err?.code, 'ECONNRESET');
    await waitFor(() => results.length === 1);
    assert.equal(results[0]!.failedSide, 'upstream');
    assert.equal((results[0]!.error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });

  it('applies backpressure: a client that stops reading stalls the sender instead of buffering', async () => {
    // sink that never reads: the relay must stop reading from the client once kernel buffers fill
    const sink = net.createServer({ pauseOnConnect: true }, () => undefined);
    const sinkPort = await listen(sink);
    const stalled = relayServer(() => sinkPort, []);
    const stalledPort = await listen(stalled);
    const c = net.connect(stalledPort, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const chunk = Buffer.alloc(64 * 1024);
    let written = 0;
    while (c.write(chunk) && written < 256 * 1024 * 1024) written += chunk.length;
    // write() returned false well before 256 MiB: the relay stopped reading
    assert.ok(written < 64 * 1024 * 1024, `wrote ${written} bytes without backpressure`);
    c.destroy();
    stalled.close();
    sink.close();
  });

  it('reuses the read buffers of a finished relay for the next one, and not those of a live one', async () => {
    const bufs: Buffer[] = [];
    const done: RelayResult[] = [];
    const pooled = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
      const up = new Direction(DEFAULT_RELAY_BUFFER);
      const down = new Direction(DEFAULT_RELAY_BUFFER);
      bufs.push(up.buffer, down.buffer);
      const upstream = newUpstream(null, down);
      startRelay(adoptAccepted(accepted, up), upstream, up, down, { onClose: (r) => done.push(r) });
      upstream.connect(echoPort, '127.0.0.1');
    });
    const port = await listen(pooled);
    const first = await pump(port, 256 * 1024);
    assert.ok(first.intact);
    await waitFor(() => done.length === 1);
    // The next relay gets the two buffers back, and while it runs they are not handed out again.
    const live = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await waitFor(() => bufs.length === 4);
    const memory = (b: Buffer): ArrayBufferLike => b.buffer;
    assert.deepEqual(new Set(bufs.slice(2).map(memory)), new Set(bufs.slice(0, 2).map(memory)));
    const other = new Direction(DEFAULT_RELAY_BUFFER);
    assert.ok(!bufs.map(memory).includes(other.buffer.buffer));
    // Both relays' data stay intact with the buffers reused.
    const second = await pump(port, 1024 * 1024);
    assert.ok(second.intact);
    live.destroy();
    pooled.close();
  });

  it('lends a framing sink READ_HEADROOM bytes before each read, in its own buffer and in small copies', async () => {
    const big = Buffer.alloc(200 * 1024, 7);
    const sender = net.createServer((s) => {
      s.write(Buffer.alloc(1000, 1));
      setTimeout(() => s.end(big), 50);
    });
    const port = await listen(sender);
    const dir = new Direction(DEFAULT_RELAY_BUFFER);
    dir.copyBelow = 16 * 1024;
    const upstream = newUpstream(null, dir);
    const got: Buffer[] = [];
    let inPlace = 0;
    let copies = 0;
    const sink = {
      writableLength: 0,
      destroyed: false,
      write(): boolean {
        throw new Error('a sink with writeFramed gets writeFramed');
      },
      writeFramed(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
        assert.ok(chunk.byteOffset >= READ_HEADROOM);
        if (chunk.buffer === dir.buffer.buffer) {
          assert.equal(chunk.byteOffset, dir.buffer.byteOffset);
          inPlace++;
        } else {
          copies++;
        }
        // The sink owns the lent bytes: scribbling over them must not touch any data.
        Buffer.from(chunk.buffer, chunk.byteOffset - READ_HEADROOM, READ_HEADROOM).fill(0xee);
        got.push(Buffer.from(chunk));
        if (cb) setImmediate(cb);
        return true;
      },
      once(): void {},
    };
    await new Promise<void>((resolve) => upstream.connect(port, '127.0.0.1', resolve));
    dir.bind(upstream, sink);
    upstream.resume();
    await waitFor(() => dir.bytes === 1000 + big.length);
    assert.ok(Buffer.concat(got).equals(Buffer.concat([Buffer.alloc(1000, 1), big])));
    assert.ok(copies >= 1 && inPlace >= 1, `${copies} copies, ${inPlace} in place`);
    upstream.destroy();
    sender.close();
  });

  it('keeps what a server-first upstream sends before the relay starts', async () => {
    const greeter = net.createServer((s) => s.end('220 hello\r\n'));
    const port = await listen(greeter);
    const dir = new Direction(1024);
    const upstream = newUpstream(null, dir);
    await new Promise<void>((resolve) => upstream.connect(port, '127.0.0.1', resolve));
    // The greeting is read (into the Direction) while nothing is bound: give it time to arrive.
    await waitFor(() => dir.bytes > 0);
    const got: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => got.push(c));
    dir.bind(upstream, sink);
    upstream.resume();
    await waitFor(() => Buffer.concat(got).toString() === '220 hello\r\n');
    upstream.destroy();
    greeter.close();
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
