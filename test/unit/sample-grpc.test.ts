// Unit tests (loopback only) of `nodemesh sample grpc` and `grpc-client`: the three call kinds, statuses, deadlines.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { grpcStatusCode, runGrpcClient, type GrpcCallResult, type GrpcClientOptions } from '../../src/sample/grpc-client';
import { echoService, startGrpcEchoServer, type EchoRequest, type EchoResponse, type GrpcEchoServer } from '../../src/sample/grpc-server';
import { waitFor } from '../helpers/wait';

type EchoClient = grpc.Client & {
  Echo(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoResponse) => void): grpc.ClientUnaryCall;
  ServerStream(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<EchoResponse>;
  Bidi(md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoResponse>;
};

describe('sample grpc server and client', () => {
  let srv: GrpcEchoServer;
  let client: EchoClient;
  before(async () => {
    srv = await startGrpcEchoServer({ host: '127.0.0.1', port: 0, pod: 'pod-g', version: 'v7', name: 'echo' });
    client = new (echoService())(srv.address, grpc.credentials.createInsecure()) as unknown as EchoClient;
  });
  after(async () => {
    client.close();
    await srv.close();
  });

  function unary(req: Partial<EchoRequest>, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; res?: EchoResponse; status: grpc.StatusObject }> {
    return new Promise((resolve) => {
      let out: { err: grpc.ServiceError | null; res?: EchoResponse } = { err: null };
      const call = client.Echo({ message: 'hi', ...req }, md, opts, (err, res) => (out = { err, res }));
      call.on('status', (status) => resolve({ ...out, status }));
    });
  }

  function run(opts: Partial<GrpcClientOptions>): Promise<{ lines: GrpcCallResult[]; summary: Awaited<ReturnType<typeof runGrpcClient>> }> {
    const lines: GrpcCallResult[] = [];
    return runGrpcClient({ target: srv.address, call: 'unary', count: 1, request: { message: 'hi' }, ...opts }, (l) => lines.push(JSON.parse(l) as GrpcCallResult)).then((summary) => ({ lines, summary }));
  }

  it('unary Echo says which pod, version and service answered, and echoes the metadata', async () => {
    const md = new grpc.Metadata();
    md.set('x-canary', 'true');
    md.set('trace-bin', Buffer.from([1, 2]));
    const { err, res, status } = await unary({ message: 'hello' }, md);
    assert.equal(err, null);
    assert.equal(res?.message, 'hello');
    assert.equal(res?.pod, 'pod-g');
    assert.equal(res?.version, 'v7');
    assert.equal(res?.name, 'echo');
    assert.equal(res?.address, srv.address);
    assert.equal(res?.metadata['x-canary'], 'true');
    assert.equal(res?.metadata['trace-bin'], undefined);
    assert.deepEqual(status.metadata.get('x-served-by'), ['pod-g']);
    assert.deepEqual(status.metadata.get('x-served-version'), ['v7']);
  });

  it('answers the grpc-status and message a request asks for, still saying who served it', async () => {
    const { err, status } = await unary({ status: grpc.status.UNAVAILABLE, status_message: 'try later' });
    assert.equal(err?.code, grpc.status.UNAVAILABLE);
    assert.equal(err?.details, 'try later');
    assert.deepEqual(status.metadata.get('x-served-by'), ['pod-g']);
    const dflt = await unary({ status: grpc.status.PERMISSION_DENIED });
    assert.equal(dflt.err?.code, grpc.status.PERMISSION_DENIED);
    assert.match(dflt.err?.details ?? '', /status 7/);
  });

  it('refuses out-of-range fields with INVALID_ARGUMENT naming them', async () => {
    for (const [req, field] of [
      [{ status: 17 }, 'status'],
      [{ delay_ms: 60_001 }, 'delay_ms'],
      [{ responses: 10_001 }, 'responses'],
    ] as const) {
      const { err } = await unary(req);
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT, field);
      assert.match(err?.details ?? '', new RegExp(field));
    }
  });

  it('server streaming sends the answers asked for, in order, then the status asked for', async () => {
    const collect = (req: Partial<EchoRequest>): Promise<{ got: EchoResponse[]; status: grpc.StatusObject }> =>
      new Promise((resolve) => {
        const got: EchoResponse[] = [];
        const call = client.ServerStream({ message: 's', ...req }, new grpc.Metadata(), {});
        call.on('data', (r: EchoResponse) => got.push(r));
        call.on('error', () => undefined);
        call.on('status', (status) => resolve({ got, status }));
      });
    const ok = await collect({ responses: 5, interval_ms: 1 });
    assert.deepEqual(ok.got.map((r) => r.index), [0, 1, 2, 3, 4]);
    assert.ok(ok.got.every((r) => r.pod === 'pod-g' && r.version === 'v7'));
    assert.equal(ok.status.code, grpc.status.OK);
    const dflt = await collect({});
    assert.equal(dflt.got.length, 3);
    const failed = await collect({ responses: 2, status: grpc.status.ABORTED, status_message: 'after two' });
    assert.equal(failed.got.length, 2);
    assert.equal(failed.status.code, grpc.status.ABORTED);
    assert.equal(failed.status.details, 'after two');
  });

  it('bidi answers each request in turn; a request asking for a status ends the call with it', async () => {
    const talk = (reqs: Array<Partial<EchoRequest>>): Promise<{ got: EchoResponse[]; status: grpc.StatusObject }> =>
      new Promise((resolve) => {
        const got: EchoResponse[] = [];
        const call = client.Bidi(new grpc.Metadata(), {});
        call.on('data', (r: EchoResponse) => got.push(r));
        call.on('error', () => undefined);
        call.on('status', (status) => resolve({ got, status }));
        for (const r of reqs) call.write({ message: 'b', ...r });
        call.end();
      });
    const ok = await talk([{ message: 'one' }, { message: 'two', delay_ms: 20 }, { message: 'three' }]);
    assert.deepEqual(ok.got.map((r) => [r.index, r.message]), [
      [0, 'one'],
      [1, 'two'],
      [2, 'three'],
    ]);
    assert.equal(ok.status.code, grpc.status.OK);
    assert.deepEqual(ok.status.metadata.get('x-served-version'), ['v7']);
    const failed = await talk([{ message: 'one' }, { status: grpc.status.RESOURCE_EXHAUSTED }, { message: 'never' }]);
    assert.deepEqual(failed.got.map((r) => r.message), ['one']);
    assert.equal(failed.status.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  it('an expired deadline ends the call with DEADLINE_EXCEEDED and the server stops working on it', async () => {
    const before = { ...srv.stats };
    const { err } = await unary({ delay_ms: 30_000 }, new grpc.Metadata(), { deadline: Date.now() + 100 });
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor('the server to give up the call', async () => srv.stats.cancelled === before.cancelled + 1 && srv.stats.active === before.active);
    // A stream cancelled by the client stops too, between two answers.
    const call = client.ServerStream({ message: 's', responses: 1000, interval_ms: 30_000 }, new grpc.Metadata(), {});
    call.on('error', () => undefined);
    await new Promise((r) => call.once('data', r));
    call.cancel();
    await waitFor('the server to stop the stream', async () => srv.stats.cancelled === before.cancelled + 2 && srv.stats.active === before.active);
  });

  it('grpc-client prints one line per call and a summary by code, pod and version', async () => {
    const unaryRun = await run({ count: 3, metadata: { 'x-canary': 'true' } });
    assert.equal(unaryRun.lines.length, 3);
    assert.deepEqual(
      unaryRun.lines.map((l) => [l.i, l.call, l.ok, l.code, l.status, l.pod, l.version, l.responses]),
      [0, 1, 2].map((i) => [i, 'unary', true, 0, 'OK', 'pod-g', 'v7', 1]),
    );
    const s = unaryRun.summary;
    assert.deepEqual([s.total, s.ok, s.failed, s.byCode, s.byPod, s.byVersion], [3, 3, 0, { OK: 3 }, { 'pod-g': 3 }, { v7: 3 }]);
    assert.ok(s.latencyMs.p50 > 0 && s.latencyMs.p50 <= s.latencyMs.p99 && s.latencyMs.p99 <= s.latencyMs.max);

    const stream = await run({ call: 'stream', count: 2, responses: 4 });
    assert.deepEqual(stream.lines.map((l) => l.responses), [4, 4]);
    const bidi = await run({ call: 'bidi', count: 1, responses: 3, request: { message: 'x', status: grpc.status.UNAVAILABLE, status_message: 'down' } });
    // The status rides on the last request: two answers, then UNAVAILABLE, with the pod from the trailers.
    assert.deepEqual(bidi.lines.map((l) => [l.ok, l.status, l.details, l.responses, l.pod]), [[false, 'UNAVAILABLE', 'down', 2, 'pod-g']]);
    assert.deepEqual(bidi.summary.byCode, { UNAVAILABLE: 1 });

    const late = await run({ count: 2, deadlineMs: 50, request: { message: 'x', delay_ms: 10_000 } });
    assert.deepEqual(late.summary.byCode, { DEADLINE_EXCEEDED: 2 });
    assert.deepEqual(late.summary.byPod, {});
  });

  it('grpc-client reports an unreachable server as UNAVAILABLE', async () => {
    const lines: GrpcCallResult[] = [];
    const s = await runGrpcClient({ target: '127.0.0.1:1', call: 'unary', count: 1, deadlineMs: 5000, request: { message: 'x' } }, (l) => lines.push(JSON.parse(l) as GrpcCallResult));
    assert.equal(lines[0]?.status, 'UNAVAILABLE');
    assert.equal(s.failed, 1);
  });

  it('reads grpc-status codes by number or name', () => {
    assert.equal(grpcStatusCode('14'), 14);
    assert.equal(grpcStatusCode('unavailable'), 14);
    assert.equal(grpcStatusCode('OK'), 0);
    assert.equal(grpcStatusCode('17'), undefined);
    assert.equal(grpcStatusCode('nope'), undefined);
  });
});
