// Integration: gRPC through two in-process agents over HBONE with a real @grpc/grpc-js client and server:
// unary, server streaming and bidi streaming, statuses and trailers passed through, per-request balancing
// over one client HTTP/2 connection, a client deadline, and the upstream idle timeout.

import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import { pod, startPair, type L7Pair } from '../helpers/l7-pair';
import { waitFor } from '../helpers/wait';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.10.2`, 'client');
const S1 = pod('echo-1', `127.${base}.11.2`, 'echo', { app: 'echo', version: 'v1' });
const S2 = pod('echo-2', `127.${base}.11.3`, 'echo', { app: 'echo', version: 'v2' });
const VIP = { ip: '10.96.0.20', port: 9090 };
const HOST = 'echo.default.svc.cluster.local';

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const SERVICE: grpc.ServiceDefinition = {
  Unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Stream: { path: '/test.Echo/Stream', requestStream: false, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Bidi: { path: '/test.Echo/Bidi', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};

function startServer(ip: string, name: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const ask = call.request.toString();
      if (ask === 'not-found') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      if (ask === 'slow') {
        setTimeout(() => cb(null, Buffer.from(`${name}:late`)), 2000);
        return;
      }
      const md = new grpc.Metadata();
      md.set('x-served-by', name);
      call.sendMetadata(md);
      cb(null, Buffer.from(`${name}:${ask}`));
    },
    Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < 5; i++) call.write(Buffer.from(`${name}:${i}`));
      call.end();
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(Buffer.from(`${name}:${m.toString()}`)));
      call.on('end', () => call.end());
    },
  });
  return new Promise((resolve, reject) =>
    server.bindAsync(`${ip}:9090`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve(server))),
  );
}

function ep(p: typeof S1): EndpointInfo {
  return { ip: p.ip, port: 9090, pod: p.name, namespace: 'default', serviceAccount: p.serviceAccount, inMesh: true };
}

describe('gRPC between two agents over HBONE (in-process, @grpc/grpc-js both ends)', () => {
  let pair: L7Pair;
  const servers: grpc.Server[] = [];
  let client: grpc.Client;
  const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

  before(async () => {
    servers.push(await startServer(S1.ip, 'echo-1'), await startServer(S2.ip, 'echo-2'));
    pair = await startPair(CLIENT, [S1, S2]);
    const cluster: ClusterInfo = { name: 'echo', host: HOST, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'grpc', policy: { lb: { kind: 'round_robin' } } };
    pair.configure({ clusters: [cluster], endpoints: new Map([['echo', [ep(S1), ep(S2)]]]), vips: [{ vip: VIP.ip, port: VIP.port, cluster: 'echo', protocol: 'grpc' }] });
    pair.setDestination(VIP);
    // One channel, one HTTP/2 connection to the client pod's redirected port.
    client = new Ctor(`127.0.0.1:${pair.clientPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': `${HOST}:9090` });
  });

  after(async () => {
    client?.close();
    await pair?.close();
    for (const s of servers) s.forceShutdown();
  });

  const unary = (msg: string, deadlineMs = 5000): Promise<{ err: grpc.ServiceError | null; reply?: string; servedBy?: string }> =>
    new Promise((resolve) => {
      let servedBy: string | undefined;
      const call = (client as unknown as { Unary: (r: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => grpc.ClientUnaryCall }).Unary(
        Buffer.from(msg),
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, reply) => resolve({ err, reply: reply?.toString(), servedBy }),
      );
      call.on('metadata', (md) => (servedBy = md.get('x-served-by')[0] as string | undefined));
    });

  it('unary calls on one connection are balanced per request across both endpoints', async () => {
    const served: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await unary(`hi${i}`);
      assert.equal(r.err, null, r.err?.message);
      assert.equal(r.reply, `${r.servedBy}:hi${i}`);
      served.push(r.servedBy!);
    }
    assert.deepEqual(new Set(served), new Set(['echo-1', 'echo-2']), served.join(' '));
    assert.equal(served.filter((s) => s === 'echo-1').length, 3);
  });

  it('passes a non-OK status and its message through (trailers)', async () => {
    const r = await unary('not-found');
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such thing');
  });

  it('streams from the server and both ways', async () => {
    const got = await new Promise<string[]>((resolve, reject) => {
      const out: string[] = [];
      const s = (client as unknown as { Stream: (r: Buffer) => grpc.ClientReadableStream<Buffer> }).Stream(Buffer.from('go'));
      s.on('data', (m: Buffer) => out.push(m.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
    assert.equal(got.length, 5);
    assert.ok(got.every((m, i) => m.endsWith(`:${i}`)));
    const echoed = await new Promise<string[]>((resolve, reject) => {
      const out: string[] = [];
      const s = (client as unknown as { Bidi: () => grpc.ClientDuplexStream<Buffer, Buffer> }).Bidi();
      s.on('data', (m: Buffer) => {
        out.push(m.toString());
        if (out.length < 3) s.write(Buffer.from(`m${out.length}`));
        else s.end();
      });
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.write(Buffer.from('m0'));
    });
    assert.equal(echoed.length, 3);
    assert.match(echoed[2]!, /^echo-[12]:m2$/);
  });

  it('the agent honours grpc-timeout itself: DEADLINE_EXCEEDED when it passes, the upstream told the remaining budget', async () => {
    const http2 = await import('node:http2');
    const session = http2.connect(`http://127.0.0.1:${pair.clientPort}`);
    try {
      const frame = (s: string): Buffer => {
        const b = Buffer.from(s);
        const h = Buffer.alloc(5);
        h.writeUInt32BE(b.length, 1);
        return Buffer.concat([h, b]);
      };
      const call = (msg: string): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }> =>
        new Promise((resolve, reject) => {
          const r = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', ':authority': `${HOST}:9090`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '250m' });
          let headers: Record<string, unknown> = {};
          let trailers: Record<string, unknown> = {};
          r.on('response', (h) => (headers = h));
          r.on('trailers', (t) => (trailers = t));
          r.on('close', () => resolve({ headers, trailers }));
          r.on('error', reject);
          r.resume();
          r.end(frame(msg));
        });
      // A raw client: it does not enforce its own deadline, so what ends the call is the agent.
      const slow = await call('slow');
      assert.equal(slow.headers['grpc-status'] ?? slow.trailers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      const fast = await call('fast');
      assert.equal(fast.trailers['grpc-status'], '0');
    } finally {
      session.close();
    }
    // Which side ends it first (the agent's timer, or the server told the remaining budget) is a race; either
    // way the call ends at the deadline with DEADLINE_EXCEEDED (the layer's own firing is unit-tested).
    assert.match(await pair.registryA.getSingleMetricAsString('istio_requests_total'), /grpc_response_status="4"/);
  });

  it('a client deadline ends the call with DEADLINE_EXCEEDED; the agent counts it once, however it ended', async () => {
    const total = async (): Promise<number> => {
      const text = await pair.registryA.getSingleMetricAsString('istio_requests_total');
      return text.split('\n').filter((l) => l.startsWith('istio_requests_total{')).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    };
    const before = await total();
    const r = await unary('slow', 300);
    assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED);
    // grpc-js sends its deadline as grpc-timeout, which the agent enforces and passes on: whichever of the
    // client, the agent and the server ends it first, the call is counted once, as the client's cancel before
    // any answer (code 0, DC, as Envoy reports it) or as DEADLINE_EXCEEDED.
    await waitFor('the call in the metrics', async () => (await total()) === before + 1, 5000);
    assert.match(await pair.registryA.getSingleMetricAsString('istio_requests_total'), /response_code="0",grpc_response_status="-",response_flags="DC"|grpc_response_status="4"/);
  });

  it('a DestinationRule idleTimeout closes idle upstream HTTP/2 sessions (without one they stay pooled)', async () => {
    const sessions = (): number => pair.a.ctx.http!.pools.stats().h2Sessions;
    // The calls above left a session per endpoint, which the pool keeps for 60 s without a rule.
    assert.equal(sessions(), 2);
    const cluster: ClusterInfo = { name: 'echo', host: HOST, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'grpc', policy: { lb: { kind: 'round_robin' }, connectionPool: { idleTimeoutMs: 200 } } };
    pair.configure({ clusters: [cluster], endpoints: new Map([['echo', [ep(S1), ep(S2)]]]), vips: [{ vip: VIP.ip, port: VIP.port, cluster: 'echo', protocol: 'grpc' }] });
    for (const m of ['a', 'b']) assert.equal((await unary(m)).err, null);
    await waitFor('both sessions to close once idle', async () => sessions() === 0, 5000);
    // The next call dials a new session and is served.
    assert.equal((await unary('c')).err, null);
    assert.equal(sessions(), 1);
  });

  it('a DestinationRule maxRequestsPerConnection retires an upstream HTTP/2 session after that many requests', async () => {
    // Each upstream session is one HBONE tunnel from node A: count the tunnels opened.
    const tunnels = (): number => pair.a.ctx.mesh!.pool.stats().streamsOpened;
    const cluster: ClusterInfo = { name: 'echo', host: HOST, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'grpc', policy: { lb: { kind: 'round_robin' }, connectionPool: { maxRequestsPerConnection: 2 } } };
    pair.configure({ clusters: [cluster], endpoints: new Map([['echo', [ep(S1), ep(S2)]]]), vips: [{ vip: VIP.ip, port: VIP.port, cluster: 'echo', protocol: 'grpc' }] });
    const before = tunnels();
    // Round robin over two endpoints: 8 calls are 4 per endpoint, 2 per session, so 2 sessions per endpoint
    // (at most one more each: the session left from the test before may still have been in the pool).
    for (let i = 0; i < 8; i++) assert.equal((await unary(`m${i}`)).err, null);
    const opened = tunnels() - before;
    assert.ok(opened >= 3 && opened <= 4, `tunnels opened for 8 calls at 2 per session: ${opened}`);
  });
});
