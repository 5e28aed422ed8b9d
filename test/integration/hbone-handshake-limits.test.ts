// Handshakes on an HBONE server over loopback: connections that never finish the TLS handshake are closed at
// the timeout, those over a bound (per source address, per pod, in all) are reset at accept and counted, a
// verified client from another address is served meanwhile, and refusals make a few counted log lines.

import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { HboneClientPool, HboneServer } from '../../src/proxy/hbone';
import { HandshakeLimiter } from '../../src/proxy/hbone/handshake-limits';
import { createTestCa } from '../helpers/test-ca';
import { echoServer, listen } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

const TD = 'spiffe://cluster.local/ns/default/sa';
const PARTIAL_HELLO = Buffer.from('160301020001' + '0001fc0303' + '00'.repeat(16), 'hex');

interface RawTcp {
  bind(host: string, port: number): number;
  fd: number;
}
const { TCP, constants } = (process as unknown as { binding(name: string): { TCP: new (t: number) => RawTcp; constants: { SOCKET: number } } }).binding('tcp_wrap');
const keep: RawTcp[] = [];
/** An unconnected client socket fd bound to `ip` (every 127/8 address is loopback): a distinct source address. */
function socketFrom(ip: string): number {
  const h = new TCP(constants.SOCKET);
  assert.equal(h.bind(ip, 0), 0);
  keep.push(h);
  return h.fd;
}

type Outcome = 'reset' | 'closed';
interface Held {
  socket: net.Socket;
  /** How the server ended it: an RST at once (over a bound) or a close (handshake timeout). */
  ended: Promise<Outcome>;
}

/** Resolves once connected, or once the connection ended (a reset at accept can beat the 'connect' event). */
function connectFrom(ip: string, port: number, partial: boolean): Promise<Held> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: ip });
    const ended = new Promise<Outcome>((res) => {
      socket.on('error', (e: NodeJS.ErrnoException) => res(e.code === 'ECONNRESET' ? 'reset' : 'closed'));
      socket.on('close', () => res('closed'));
    });
    socket.once('connect', () => {
      if (partial) socket.write(PARTIAL_HELLO);
      resolve({ socket, ended });
    });
    void ended.then(() => resolve({ socket, ended }));
  });
}

describe('HBONE handshakes: timeouts and bounds', () => {
  const ca = createTestCa();
  const lines: { msg: string; reason?: string; count?: number; byReason?: Record<string, number> }[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    }),
  );
  const limiter = new HandshakeLimiter({ perSource: 3, perPod: 5, total: 8 });
  // a pod's two listeners (IPv4 and IPv6 in the agent) share one gate
  const gate = limiter.gate();
  const serverCert = ca.issue({ spiffeId: `${TD}/echo` });
  const options = {
    identity: () => serverCert,
    trustBundle: () => [ca.rootPem],
    handshakeTimeoutMs: 60_000,
    handshakeGate: gate,
    onConnect: (_ctx: unknown, respond: (status: number) => void) => respond(200),
    log,
  };
  const server = new HboneServer(options);
  const twin = new HboneServer(options);
  const other = new HboneServer({ ...options, handshakeGate: limiter.gate() });
  const quickGate = new HandshakeLimiter().gate();
  const quick = new HboneServer({ ...options, handshakeTimeoutMs: 300, handshakeGate: quickGate });
  let quickPort = 0;
  const echo = echoServer();
  let port = 0;
  let twinPort = 0;
  let otherPort = 0;
  let echoPort = 0;
  const held: Held[] = [];
  const pool = new HboneClientPool({});

  before(async () => {
    port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
    twinPort = (await twin.listen({ host: '127.0.0.1', port: 0 })).port;
    otherPort = (await other.listen({ host: '127.0.0.1', port: 0 })).port;
    quickPort = (await quick.listen({ host: '127.0.0.1', port: 0 })).port;
    echoPort = await listen(echo);
  });
  after(async () => {
    for (const h of held) h.socket.destroy();
    await pool.close();
    for (const s of [server, twin, other, quick]) s.destroy();
    echo.close();
    limiter.close();
  });

  it('closes an idle connection and a partial ClientHello at the handshake timeout, counted', async () => {
    const idle = await connectFrom('127.0.0.2', quickPort, false);
    const partial = await connectFrom('127.0.0.2', quickPort, true);
    assert.equal(await idle.ended, 'closed');
    assert.equal(await partial.ended, 'closed');
    const s = quick.stats();
    assert.equal(s.handshakeTimeouts, 2);
    assert.equal(s.handshakeFailures, 2);
    await waitFor('the slots to be given back', async () => quick.stats().handshakesInProgress === 0 && quickGate.size === 0);
  });

  it('resets connections over the per-source bound at accept; another address and a verified client are still served', async () => {
    for (let i = 0; i < 3; i++) held.push(await connectFrom('127.0.0.3', port, i % 2 === 1));
    await waitFor('three handshakes under way', async () => server.stats().handshakesInProgress === 3);
    const over = await connectFrom('127.0.0.3', port, true);
    assert.equal(await over.ended, 'reset', 'the fourth from one address is reset');
    assert.equal(server.stats().handshakesRejected.source, 1);
    held.push(await connectFrom('127.0.0.4', port, false));
    await waitFor('another address admitted', async () => server.stats().handshakesInProgress === 4);

    const { stream } = await pool.connect({
      sourcePod: 'pod-a',
      source: ca.issue({ spiffeId: `${TD}/client` }),
      expectedServerId: `${TD}/echo`,
      address: { ip: '127.0.0.1', port },
      target: { ip: '127.0.0.1', port: echoPort },
      newSocket: async () => socketFrom('127.0.0.9'),
    });
    stream.reset(0);
    assert.equal(server.stats().sessionsAccepted, 1, 'a verified client from a fifth address got its session');
    assert.equal(server.stats().handshakesInProgress, 4, 'its handshake gave its slot back once done');
  });

  it('bounds the pod across its listeners, and the thread in all', async () => {
    // 4 under way on this pod (previous test); its twin listener admits one more, then the pod is full
    held.push(await connectFrom('127.0.0.5', twinPort, false));
    const full = await connectFrom('127.0.0.6', twinPort, false);
    assert.equal(await full.ended, 'reset');
    assert.equal(twin.stats().handshakesRejected.pod, 1);
    assert.equal(gate.size, 5);
    // another pod of the thread takes the total (8) up to its bound
    for (const ip of ['127.0.0.7', '127.0.0.7', '127.0.0.8']) held.push(await connectFrom(ip, otherPort, false));
    await waitFor('the thread at its total bound', async () => limiter.size === 8);
    const overTotal = await connectFrom('127.0.0.10', otherPort, false);
    assert.equal(await overTotal.ended, 'reset');
    assert.equal(other.stats().handshakesRejected.total, 1);
    for (const h of held.splice(0)) h.socket.destroy();
    await waitFor('every slot back once the clients left', async () => limiter.size === 0 && gate.size === 0);
  });

  it('logs refusals as a first line and a count, not a line per connection', async () => {
    const before = lines.filter((l) => l.msg.startsWith('HBONE handshake refused')).length;
    const burst: Held[] = [];
    for (let i = 0; i < 3; i++) burst.push(await connectFrom('127.0.0.11', otherPort, false));
    await waitFor('three under way', async () => other.stats().handshakesInProgress === 3);
    for (let i = 0; i < 40; i++) await (await connectFrom('127.0.0.11', otherPort, false)).ended;
    for (const h of burst) h.socket.destroy();
    const refusals = lines.filter((l) => l.msg.startsWith('HBONE handshake refused')).slice(before);
    assert.ok(refusals.length <= 1, `at most the first refusal of a quiet period is logged at once: ${JSON.stringify(refusals)}`);
    other.destroy(); // closing logs what was counted
    const all = lines.filter((l) => l.msg.startsWith('HBONE handshake refused')).slice(before);
    assert.ok(all.length <= 2, JSON.stringify(all));
    const counted = all.reduce((n, l) => n + (l.count ?? 1), 0);
    assert.ok(counted >= 40, `every refusal is counted in the lines: ${JSON.stringify(all)}`);
  });
});
