// The HTTP/2 side facing clients (cleartext, prior knowledge, as gRPC clients use it): Node's http2 server
// on accepted connections (pod sockets or HBONE tunnels). Each stream is one request through the
// connection's handler; trailers pass through (gRPC status lives there).
//
// Node's http2 (nghttp2) rather than the project's own HTTP/2 endpoint: application-facing HTTP/2 stays on
// the widely deployed stack until ours passes the conformance work of the hostile-input issue.

import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger';
import type { ServedConnection } from './downstream-h1';
import { stripHopByHop } from './headers';
import { abortExchange, countPushed, NO_ANSWER, newRequestContext, settle } from './exchange';
import type { BodySink, Headers, L7Request, L7Response, RequestContext } from './request';

const SERVED = Symbol('nodemesh.servedConnection');
type WithServed = { [SERVED]?: ServedConnection };

/**
 * The connection being handed to the server right now: Node creates the session synchronously inside
 * emit('connection'), and wraps a non-native socket (an HBONE tunnel) in a socket of its own, so the
 * session is the one place to keep what the connection carries.
 */
let handing: ServedConnection | undefined;

/** What is known of one exchange as it goes: the answer (once there is one), body bytes, trailers sent. */
interface Exchange {
  answer: L7Response | null;
  responseBytes: number;
  trailers: Headers | null;
}

/*
 * A client that breaks HTTP/2 shows in two ways: a connection error nghttp2 detected (the session's error is
 * `ERR_HTTP2_ERROR`: "Protocol error", "Flow control error", a bad preface), or a stream it reset for a
 * malformed request (its reset code: PROTOCOL_ERROR for DATA that disagrees with content-length, say). A
 * peer's own GOAWAY or reset with another code, or a socket error, is not one. nghttp2 refuses some malformed
 * requests (invalid header names) before Node creates a stream: those never reach JavaScript and cannot be
 * counted here.
 */

/** RST_STREAM codes that mean the client broke HTTP/2 on that stream. */
const PEER_FAULT_CODES = new Set([http2.constants.NGHTTP2_PROTOCOL_ERROR, http2.constants.NGHTTP2_FLOW_CONTROL_ERROR, http2.constants.NGHTTP2_FRAME_SIZE_ERROR]);

const COUNTED = Symbol('nodemesh.malformedCounted');

/** Counts a client connection that broke HTTP/2 once, however many of its streams failed with it. */
function malformed(session: http2.Http2Session, why: string): void {
  const s = session as unknown as WithServed & { [COUNTED]?: true };
  if (s[COUNTED]) return;
  s[COUNTED] = true;
  s[SERVED]?.onClientError(`H2:${why}`);
}

/** A stream that ended reset for a fault of the client's counts its connection (once). */
function countIfPeerFault(session: http2.Http2Session, stream: http2.ServerHttp2Stream): void {
  if (stream.rstCode !== undefined && PEER_FAULT_CODES.has(stream.rstCode)) malformed(session, `stream reset with HTTP/2 error code ${stream.rstCode}`);
}

export interface H2DownstreamOptions {
  log: Logger;
  /** Concurrent streams per client connection. Default 100. */
  maxConcurrentStreams?: number;
  /** An idle connection (no stream) is closed after this long. Default 60 s. */
  idleTimeoutMs?: number;
}

export class H2Downstream {
  readonly server: http2.Http2Server;
  private readonly log: Logger;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;

  constructor(opts: H2DownstreamOptions) {
    this.log = opts.log;
    this.server = http2.createServer({
      settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100 },
      // Bounds per connection: header lists and the session's buffered memory (MB).
      maxHeaderListPairs: 256,
      maxSessionMemory: 16,
    });
    this.server.setTimeout(opts.idleTimeoutMs ?? 60_000);
    this.server.on('session', (session: http2.ServerHttp2Session) => {
      (session as unknown as WithServed)[SERVED] = handing;
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', (err: NodeJS.ErrnoException) => {
        this.log.debug({ err }, 'downstream HTTP/2 session error');
        if (err.code === 'ERR_HTTP2_ERROR') malformed(session, err.message);
      });
      // From the session, not the server: a stream nghttp2 has reset already (its DATA broke the request)
      // arrives detached from its session, and its failure still belongs to this connection.
      session.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(session, stream, headers));
    });
  }

  serve(socket: Duplex, served: ServedConnection): void {
    handing = served;
    try {
      this.server.emit('connection', socket);
    } finally {
      handing = undefined;
    }
  }

  /**
   * GOAWAY on every connection: streams in flight finish, new ones go to a new connection. A connection that
   * was accepted before the drain but read after it gets its GOAWAY with its first stream.
   */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions) s.close();
  }

  private onStream(session: http2.ServerHttp2Session, stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): void {
    // A stream's error is its reset (or its session's failure): counted from 'close' and the session.
    stream.on('error', () => undefined);
    // after its first stream, so that stream is served (GOAWAY names it as processed)
    if (this.draining && !session.closed) session.close();
    if (stream.destroyed) {
      countIfPeerFault(session, stream);
      return;
    }
    const served = (session as unknown as WithServed)[SERVED];
    if (!served) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const headers = Object.create(null) as Headers;
    for (const k of Object.keys(h)) {
      const v = h[k];
      if (k[0] !== ':' && v !== undefined) headers[k] = v as string | string[];
    }
    // Node's http2 refuses connection-specific fields already; only `te` other than trailers may remain.
    stripHopByHop(headers, true);
    const authority = (h[':authority'] as string | undefined) ?? (headers.host as string | undefined) ?? '';
    if (headers.host !== undefined) delete headers.host;
    const request: L7Request = {
      method: (h[':method'] as string | undefined) ?? 'GET',
      path: (h[':path'] as string | undefined) ?? '/',
      authority,
      scheme: (h[':scheme'] as string | undefined) ?? 'http',
      headers,
      body: stream.readableEnded || stream.endAfterHeaders ? null : stream,
      version: 'http2',
    };
    const rc = newRequestContext(served.conn, headers);
    const requestBytes = countPushed(stream);
    if (request.body === null) stream.resume();
    const x: Exchange = { answer: null, responseBytes: 0, trailers: null };
    // 'close' comes once per stream, answered or not: the one place the exchange is settled.
    stream.once('close', () => {
      countIfPeerFault(session, stream);
      const complete = stream.writableFinished && (stream.rstCode ?? 0) === 0;
      if (!complete) abortExchange(rc);
      settle(rc, x.answer ?? NO_ANSWER, { requestBytes: requestBytes(), responseBytes: x.responseBytes, downstreamReset: !complete, trailers: x.trailers });
    });
    served.handler(request, rc).then(
      (answer) => {
        x.answer = answer;
        this.respond(stream, answer, rc, x);
      },
      (err: unknown) => {
        this.log.error({ err }, 'L7 handler failed (a layer broke its contract); answering 500');
        if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 500 }, { endStream: true });
      },
    );
  }

  private respond(stream: http2.ServerHttp2Stream, answer: L7Response, rc: RequestContext, x: Exchange): void {
    const body = answer.body;
    if (stream.destroyed || stream.closed) {
      if (body !== null && !Buffer.isBuffer(body)) body.abort(new Error('the client went away'));
      return;
    }
    const head: http2.OutgoingHttpHeaders = { ':status': answer.status };
    for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined) head[k] = v;
    try {
      if (body === null) {
        // Trailers-only (a local gRPC answer) or an empty body.
        if (answer.trailers) Object.assign(head, answer.trailers);
        x.trailers = answer.trailers ?? null;
        stream.respond(head, { endStream: true });
        return;
      }
      if (Buffer.isBuffer(body)) {
        stream.respond(head);
        x.responseBytes = body.length;
        stream.end(body);
        return;
      }
      // A proxied body may end with trailers (gRPC always does): ask Node to wait for them.
      stream.respond(head, { waitForTrailers: true });
    } catch (err) {
      this.log.debug({ err }, 'cannot write the upstream response head');
      rc.flags.push('UPE');
      x.answer = { status: 502, headers: {}, body: null };
      if (body !== null && !Buffer.isBuffer(body)) body.abort(new Error('invalid response head'));
      if (!stream.headersSent) stream.respond({ ':status': 502 }, { endStream: true });
      else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    let trailers: Headers | null = null;
    stream.once('wantTrailers', () => {
      const t: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(trailers ?? {})) if (v !== undefined) t[k] = v;
      x.trailers = trailers;
      try {
        stream.sendTrailers(t);
      } catch {
        stream.close();
      }
    });
    const sink: BodySink = {
      write(chunk) {
        x.responseBytes += chunk.length;
        return stream.write(chunk);
      },
      end(t) {
        trailers = t;
        stream.end();
      },
      fail(err) {
        rc.flags.push('UC');
        rc.detail = `upstream reset mid-response: ${err.message}`;
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      },
    };
    stream.on('drain', () => body.resume());
    rc.onAbort = () => body.abort(new Error('the client went away'));
    body.pipe(sink);
  }
}
