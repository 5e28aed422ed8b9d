// `nodemesh sample grpc-client`: calls the sample Echo service N times (unary, server stream or bidi), one JSON line
// per call (code, details, which pod and version served, ms) and a summary per code, pod and version.

import * as grpc from '@grpc/grpc-js';
import { echoService, SERVED_BY, SERVED_VERSION, type EchoRequest, type EchoResponse } from './grpc-server';
import { Tally, type TallySummary } from './tally';

export type GrpcCallKind = 'unary' | 'stream' | 'bidi';
export const GRPC_CALL_KINDS: readonly GrpcCallKind[] = ['unary', 'stream', 'bidi'];

export interface GrpcClientOptions {
  /** host:port, or any grpc-js target (dns:///name:port, xds:///...). */
  target: string;
  call: GrpcCallKind;
  count: number;
  /** Per-call deadline; none when absent. */
  deadlineMs?: number;
  metadata?: Record<string, string>;
  /** What each request asks of the server (see echo.proto); for bidi, `status` rides on the last request. */
  request: Omit<EchoRequest, 'responses'>;
  /** stream: answers asked of the server; bidi: requests sent (one answer each). */
  responses?: number;
  /** Print the per-call lines (default true). */
  lines?: boolean;
}

export interface GrpcCallResult {
  i: number;
  call: GrpcCallKind;
  ok: boolean;
  code: number;
  /** The code's name: OK, DEADLINE_EXCEEDED, UNAVAILABLE, ... */
  status: string;
  details: string;
  /** From the last answer, else from the trailers (x-served-by, x-served-version). */
  pod?: string;
  version?: string;
  /** Answers received. */
  responses: number;
  ms: number;
}

export type GrpcClientSummary = Omit<TallySummary, 'byOutcome' | 'errors'> & { byCode: Record<string, number> };

type EchoClient = grpc.Client & {
  Echo(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoResponse) => void): grpc.ClientUnaryCall;
  ServerStream(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<EchoResponse>;
  Bidi(md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoResponse>;
};

const codeName = (code: number): string => grpc.status[code] ?? String(code);

/** A grpc-status from its number (0..16) or its name (UNAVAILABLE, unavailable); undefined if neither. */
export function grpcStatusCode(v: string): number | undefined {
  const n = /^\d{1,2}$/.test(v) ? Number(v) : (grpc.status as unknown as Record<string, number | undefined>)[v.toUpperCase()];
  return n !== undefined && n >= 0 && n <= 16 ? n : undefined;
}

/** One call; never rejects: every outcome, failures included, is a result. */
function callOnce(client: EchoClient, opts: GrpcClientOptions, i: number): Promise<GrpcCallResult> {
  const t0 = process.hrtime.bigint();
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  const callOpts: grpc.CallOptions = opts.deadlineMs !== undefined ? { deadline: Date.now() + opts.deadlineMs } : {};
  const n = opts.responses ?? 3;
  let last: EchoResponse | undefined;
  let responses = 0;
  const got = (r: EchoResponse): void => {
    last = r;
    responses++;
  };
  return new Promise((resolve) => {
    // 'status' comes last on every kind of call, after the answers and the unary callback.
    const onStatus = (s: grpc.StatusObject): void => {
      const trailer = (k: string): string | undefined => {
        const v = s.metadata?.get(k)[0];
        return typeof v === 'string' && v !== '' ? v : undefined;
      };
      resolve({
        i,
        call: opts.call,
        ok: s.code === grpc.status.OK,
        code: s.code,
        status: codeName(s.code),
        details: s.details,
        pod: last?.pod || trailer(SERVED_BY),
        version: last?.version || trailer(SERVED_VERSION),
        responses,
        ms: Math.round((Number(process.hrtime.bigint() - t0) / 1e6) * 1000) / 1000,
      });
    };
    if (opts.call === 'unary') {
      const c = client.Echo(opts.request, md, callOpts, (_err, res) => res && got(res));
      c.on('status', onStatus);
    } else if (opts.call === 'stream') {
      const c = client.ServerStream({ ...opts.request, responses: n }, md, callOpts);
      c.on('data', got);
      c.on('error', () => undefined); // the status event reports it
      c.on('status', onStatus);
    } else {
      // Ping-pong: each request waits for the answer to the one before; the last carries the status asked.
      const c = client.Bidi(md, callOpts);
      let sent = 0;
      const sendNext = (): void => {
        if (sent >= n) return void c.end();
        const lastOne = ++sent === n;
        c.write({ ...opts.request, status: lastOne ? opts.request.status : 0 });
      };
      c.on('data', (r: EchoResponse) => {
        got(r);
        sendNext();
      });
      c.on('error', () => undefined);
      c.on('status', onStatus);
      sendNext();
    }
  });
}

/** Runs the calls one after another on one channel; resolves with the summary. */
export async function runGrpcClient(opts: GrpcClientOptions, out: (line: string) => void): Promise<GrpcClientSummary> {
  const Echo = echoService();
  const client = new Echo(opts.target, grpc.credentials.createInsecure()) as unknown as EchoClient;
  const tally = new Tally();
  try {
    for (let i = 0; i < opts.count; i++) {
      const r = await callOnce(client, opts, i);
      tally.add({ ok: r.ok, outcome: r.status, pod: r.pod, version: r.version, ms: r.ms });
      if (opts.lines !== false) out(JSON.stringify(r));
    }
  } finally {
    client.close();
  }
  // Every call ends with a status (a failed connection too: UNAVAILABLE), so there are no separate errors.
  const { total, ok, failed, byOutcome, errors: _errors, ...rest } = tally.summary();
  return { total, ok, failed, byCode: byOutcome, ...rest };
}
