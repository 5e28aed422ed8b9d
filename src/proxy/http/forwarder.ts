// The terminal handler: sends the request to `rc.target` over a pooled upstream connection (HTTP/1.1
// through undici, HTTP/2 through Node's http2) and streams the answer back as a BodySource.

import type http2 from 'node:http2';
import { constants as http2Constants } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ProxyContext } from '../context';
import { relayPlainStreams } from './tunnel-relay';
import { fromRawPairs, stripHopByHop } from './headers';
import { localReply, type BodySink, type BodySource, type Handler, type Headers, type L7Request, type L7Response, type RequestContext } from './request';
import { UpstreamConnectError, dialUpstream } from './upstream-dial';
import type { UpstreamPools } from './upstream-pools';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Envoy's wording, so operators' searches find the same causes. */
function upstreamFailure(rc: RequestContext, err: unknown, beforeHeaders: boolean, refused = false): L7Response {
  if (err instanceof UpstreamConnectError) return { ...localReply(rc, 503, `upstream connect error: ${err.message}`, err.flag), failure: 'connect' };
  const msg = (err as Error)?.message ?? String(err);
  return { ...localReply(rc, 503, `upstream ${beforeHeaders ? 'reset before response headers' : 'reset'}: ${msg}`, 'UC'), failure: refused ? 'refused' : 'reset' };
}

/**
 * A response body arriving from an upstream: delivered to the sink once piped, held (and the upstream
 * paused) until then. `pauseUpstream`/`resumeUpstream` apply backpressure to whatever feeds it.
 */
class UpstreamBody implements BodySource {
  private sink: BodySink | null = null;
  private held: Buffer[] = [];
  private ended: { trailers: Headers | null } | null = null;
  private failed: Error | null = null;
  resumeUpstream: () => void = () => {};
  abortUpstream: (err: Error) => void = () => {};

  /** From the upstream: false means "pause until resume()". */
  push(chunk: Buffer): boolean {
    if (this.sink === null) {
      this.held.push(chunk);
      return false;
    }
    return this.sink.write(chunk);
  }

  finish(trailers: Headers | null): void {
    if (this.sink === null) this.ended = { trailers };
    else this.sink.end(trailers);
  }

  fail(err: Error): void {
    if (this.sink === null) this.failed = err;
    else this.sink.fail(err);
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    let more = true;
    for (const chunk of this.held.splice(0)) more = sink.write(chunk) && more;
    if (this.failed) sink.fail(this.failed);
    else if (this.ended) sink.end(this.ended.trailers);
    else if (more) this.resumeUpstream();
  }

  resume(): void {
    this.resumeUpstream();
  }

  abort(reason: Error): void {
    this.abortUpstream(reason);
  }
}

/**
 * Upstream request headers: the client's (already mutated by the layers; the codecs left out what is per
 * hop). `Expect: 100-continue` was answered by us (Node does, before the request reaches us). HTTP/1.1
 * sends them as they are with `host` set (every attempt sets the same); HTTP/2 needs its own object.
 */
function h1Headers(req: L7Request): Headers {
  const h = req.headers;
  if (h.expect !== undefined) delete h.expect;
  h.host = req.authority;
  return h;
}

function h2Headers(req: L7Request): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': req.method, ':path': req.path, ':authority': req.authority, ':scheme': 'http' };
  for (const k of Object.keys(req.headers)) {
    const v = req.headers[k];
    if (v !== undefined && k !== 'host' && k !== 'expect') out[k] = v;
  }
  return out;
}

function h1Request(pools: UpstreamPools, ctx: ProxyContext, req: L7Request, rc: RequestContext): Promise<L7Response> {
  const target = rc.target!;
  const conn = rc.conn;
  const pool = pools.h1Pool(conn.pod, conn.sockets, target, rc.cluster?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, conn.protocol === 'detect' ? 'http1' : undefined, rc.cluster?.policy?.connectionPool);
  return new Promise<L7Response>((resolve) => {
    const body = new UpstreamBody();
    let settled = false;
    const handler: Dispatcher.DispatchHandlers = {
      onConnect(abort) {
        body.abortUpstream = (err) => abort(err);
        rc.onAbort = () => abort(new Error('the client went away'));
        if (rc.aborted) abort(new Error('the client went away'));
      },
      onHeaders(status, rawHeaders, resume) {
        // 1xx interim answers (100 Continue went to the client already) are not the response.
        if (status < 200) return true;
        body.resumeUpstream = resume;
        const headers = fromRawPairs(rawHeaders as unknown as Buffer[], true);
        stripHopByHop(headers, false);
        settled = true;
        resolve({ status, headers, body });
        // Hold the body until the codec pipes it (the promise resolves on a later tick).
        return false;
      },
      onData(chunk) {
        return body.push(chunk);
      },
      onComplete(trailers) {
        body.finish(trailers && trailers.length > 0 ? fromRawPairs(trailers as unknown as Buffer[]) : null);
      },
      onError(err) {
        if (!settled) {
          settled = true;
          resolve(upstreamFailure(rc, err, true));
        } else {
          body.fail(err);
        }
      },
    };
    pool.dispatch(
      {
        path: req.path,
        method: req.method as Dispatcher.HttpMethod,
        headers: h1Headers(req) as Record<string, string | string[]>,
        body: req.body as Readable | Buffer | null,
      },
      handler,
    );
    void ctx;
  });
}

async function h2Request(pools: UpstreamPools, req: L7Request, rc: RequestContext): Promise<L7Response> {
  const target = rc.target!;
  const conn = rc.conn;
  const headers = h2Headers(req);
  let stream: http2.ClientHttp2Stream;
  try {
    stream = await pools.h2Request(conn.pod, conn.sockets, target, rc.cluster?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, headers, { endStream: req.body === null }, conn.protocol === 'detect' ? 'http2' : undefined, rc.cluster?.policy?.connectionPool);
  } catch (err) {
    // A connect error, or headers the HTTP/2 codec refuses.
    return upstreamFailure(rc, err, true);
  }
  if (req.body !== null) {
    if (Buffer.isBuffer(req.body)) stream.end(req.body);
    else {
      const src = req.body;
      src.pipe(stream);
      src.once('error', () => stream.close());
    }
  }
  return new Promise<L7Response>((resolve) => {
    const body = new UpstreamBody();
    let settled = false;
    body.resumeUpstream = () => stream.resume();
    body.abortUpstream = () => stream.close(http2Constants.NGHTTP2_CANCEL);
    rc.onAbort = () => stream.close(http2Constants.NGHTTP2_CANCEL);
    if (rc.aborted) stream.close(http2Constants.NGHTTP2_CANCEL);
    stream.pause();
    stream.on('response', (h, flags) => {
      const status = Number(h[':status']);
      const headers: Headers = {};
      for (const [k, v] of Object.entries(h)) if (k[0] !== ':' && v !== undefined) headers[k] = v as string | string[];
      settled = true;
      // END_STREAM on the response HEADERS: no body, no trailers (gRPC's trailers-only answer carries its
      // status here, and clients only read it from headers that end the stream).
      const endStream = (flags & http2Constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      resolve({ status, headers, body: endStream ? null : body });
    });
    stream.on('data', (chunk: Buffer) => {
      if (!body.push(chunk)) stream.pause();
    });
    let trailers: Headers | null = null;
    stream.on('trailers', (t) => {
      trailers = {};
      for (const [k, v] of Object.entries(t)) if (k[0] !== ':' && v !== undefined) trailers[k] = v as string | string[];
    });
    stream.on('end', () => body.finish(trailers));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      const code = stream.rstCode ?? 0;
      if (!settled) {
        settled = true;
        // REFUSED_STREAM (7): the upstream did not process it; retries may treat it as safe.
        const reason = code === 7 ? 'refused stream' : `stream closed with code ${code}`;
        resolve(upstreamFailure(rc, new Error(reason), true, code === 7));
      } else if (code !== 0) {
        body.fail(new Error(`upstream reset the stream (HTTP/2 error code ${code})`));
      } else if (!stream.readableEnded) {
        body.finish(trailers);
      }
    });
  });
}

/** An Upgrade (WebSocket): one fresh connection, the request head written as received, then raw bytes. */
async function upgrade(ctx: ProxyContext, req: L7Request, rc: RequestContext): Promise<L7Response> {
  const target = rc.target!;
  const up = req.upgrade!;
  let socket;
  try {
    socket = await dialUpstream(ctx, rc.conn.pod, rc.conn.sockets, target, rc.cluster?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, rc.conn.protocol === 'detect' ? 'http1' : undefined);
  } catch (err) {
    return upstreamFailure(rc, err, true);
  }
  const lines = [`${req.method} ${req.path} HTTP/1.1`, `host: ${req.authority}`];
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k === 'host') continue;
    for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
  }
  // The codec kept the upgrade's own hop-by-hop fields; they are what this hop is about.
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (up.head.length > 0) socket.write(up.head);
  return { status: 101, headers: {}, body: null, tunnel: relayPlainStreams(up.socket, socket) };
}

export function forwarder(ctx: ProxyContext, pools: UpstreamPools): Handler {
  return (req, rc) => {
    if (rc.target === null) return Promise.resolve(localReply(rc, 503, 'no healthy upstream', 'UH'));
    rc.attempts++;
    if (req.upgrade) return upgrade(ctx, req, rc);
    return rc.upstreamVersion === 'http2' ? h2Request(pools, req, rc) : h1Request(pools, ctx, req, rc);
  };
}
