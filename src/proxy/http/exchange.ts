// Per-exchange bookkeeping the codecs share: a fresh RequestContext, byte counting of request bodies,
// and the one place an exchange is settled (its `done` callbacks run, exactly once).

import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { HttpConn } from './conn';
import { headerValue, isGrpc, REQUEST_ID_HEADER } from './headers';
import type { Headers, L7Response, RequestContext, RequestResult } from './request';

/** `x-request-id` values we pass on: printable ASCII, bounded (it ends up in logs and spans). */
const REQUEST_ID_OK = /^[\x21-\x7e]{1,128}$/;

export function newRequestContext(conn: HttpConn, headers: Headers): RequestContext {
  const given = headerValue(headers, REQUEST_ID_HEADER);
  let id: string;
  if (given !== undefined && REQUEST_ID_OK.test(given)) {
    id = given;
  } else {
    id = randomUUID();
    headers[REQUEST_ID_HEADER] = id;
  }
  return {
    id,
    conn,
    startedAt: process.hrtime.bigint(),
    flags: [],
    aborted: false,
    onAbort: null,
    grpc: isGrpc(headers),
    route: null,
    backend: null,
    cluster: null,
    endpoint: null,
    target: null,
    upstreamVersion: null,
    attempts: 0,
    previousHosts: [],
    releaseAttempt: null,
    detail: null,
    done: [],
  };
}

/**
 * Counts the bytes a Readable body delivers without becoming one of its consumers (a 'data' listener would
 * start the flow before the real consumer is attached): both Node's HTTP/1 parser and its HTTP/2 session
 * hand body bytes to the message with push(), so the count sits there.
 */
export function countPushed(r: Readable): () => number {
  let n = 0;
  const push = r.push;
  r.push = function countingPush(this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) n += (chunk as { length: number }).length;
    return push.call(this, chunk, encoding);
  };
  return () => n;
}

const settled = new WeakSet<RequestContext>();

/** The client went away before the exchange ended: stop the work in flight for it. */
export function abortExchange(rc: RequestContext): void {
  if (rc.aborted) return;
  rc.aborted = true;
  const f = rc.onAbort;
  rc.onAbort = null;
  if (f) f();
}

/** What the metrics record for an exchange the client abandoned before any answer (Envoy reports 0). */
export const NO_ANSWER: L7Response = { status: 0, headers: {}, body: null };

/** Ends the exchange's bookkeeping: runs its `done` callbacks once with what the codec counted. */
export function settle(
  rc: RequestContext,
  answer: L7Response,
  counts: { requestBytes: number; responseBytes: number; downstreamReset: boolean; trailers: Headers | null },
): void {
  if (settled.has(rc)) return;
  settled.add(rc);
  if (counts.downstreamReset && !rc.flags.includes('DC') && !rc.flags.includes('UC')) rc.flags.push('DC');
  let grpcStatus: string | null = null;
  if (rc.grpc) {
    grpcStatus = headerValue(counts.trailers ?? {}, 'grpc-status') ?? headerValue(answer.trailers ?? {}, 'grpc-status') ?? headerValue(answer.headers, 'grpc-status') ?? null;
  }
  const result: RequestResult = {
    status: answer.status,
    requestBytes: counts.requestBytes,
    responseBytes: counts.responseBytes,
    grpcStatus,
    downstreamReset: counts.downstreamReset,
    durationMs: Number(process.hrtime.bigint() - rc.startedAt) / 1e6,
  };
  for (const fn of rc.done) {
    try {
      fn(result);
    } catch {
      // a telemetry sink that throws must not take the others down
    }
  }
}
