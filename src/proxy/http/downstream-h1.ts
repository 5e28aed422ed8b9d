// The HTTP/1.1 side facing clients: Node's llhttp-based server parses requests off accepted connections
// (pod sockets or HBONE tunnels); each request goes through the connection's handler; answers are written
// back with backpressure. Malformed requests (smuggling shapes, bad chunking, oversized headers) are
// answered 400/431 on that connection only, and never reach a handler.

import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger';
import type { HttpConn } from './conn';
import { withoutHopByHop } from './headers';
import { abortExchange, countPushed, NO_ANSWER, newRequestContext, settle } from './exchange';
import type { BodySink, Handler, Headers, L7Request, L7Response, RequestContext } from './request';

/** What is known of one exchange as it goes: the answer (once there is one) and the body bytes written. */
interface Exchange {
  answer: L7Response | null;
  responseBytes: number;
}

/** What a connection carries into the server: its context and the handler stack for its requests. */
export interface ServedConnection {
  conn: HttpConn;
  handler: Handler;
  /** Called once per parse error, with what was wrong (counted by the caller). */
  onClientError(code: string): void;
}

const SERVED = Symbol('nodemesh.servedConnection');

/**
 * llhttp takes a request line without a version (`GET /`) as HTTP/0.9 and still reads header lines after it;
 * an upstream that reads it as a complete HTTP/0.9 request would take those lines for a second request.
 * HTTP/0.9 has no place in a mesh: such a request is refused like any other malformed one.
 */
const HTTP09 = 'HTTP09_REQUEST_LINE';
const HTTP09_ANSWER = 'bad request: the request line has no HTTP version (HTTP/0.9 is not served) (HTTP09_REQUEST_LINE)\n';
type WithServed = { [SERVED]?: ServedConnection };

export interface H1DownstreamOptions {
  log: Logger;
  /** Longest request head. Envoy's default is 60 KiB; Node's 16 KiB is too small for some clients' cookies. */
  maxHeaderBytes?: number;
  /** An idle keep-alive connection is closed after this long (downstream idle timeout). Default 60 s. */
  idleTimeoutMs?: number;
  /** The request head must arrive within this long of the connection's first byte (slow-loris). Default 30 s. */
  headersTimeoutMs?: number;
}

export class H1Downstream {
  readonly server: http.Server;
  private readonly log: Logger;
  private draining = false;
  /** Connections already answered for a malformed request. */
  private readonly refused = new WeakSet<Duplex>();

  constructor(opts: H1DownstreamOptions) {
    this.log = opts.log;
    this.server = http.createServer({
      maxHeaderSize: opts.maxHeaderBytes ?? 60 * 1024,
      keepAliveTimeout: opts.idleTimeoutMs ?? 60_000,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      // Whole-request timeouts are route policy (long uploads and streams are legitimate).
      requestTimeout: 0,
      // Never the lenient parser: it is what request smuggling needs.
      insecureHTTPParser: false,
    });
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
      this.served(req.socket)?.onClientError('connect_method');
      socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nCONNECT is not proxied by the mesh\n');
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
  }

  /** Serves HTTP/1.1 on `socket` (already read from: the caller may have unshifted the bytes it sniffed). */
  serve(socket: Duplex, served: ServedConnection): void {
    (socket as WithServed)[SERVED] = served;
    this.server.emit('connection', socket);
    // The server reads a native socket's handle directly, but what was read while sniffing sits in the
    // stream's buffer: resuming delivers it to the parser first (and starts the handle reading).
    socket.resume();
  }

  /** From now on every answer says `Connection: close`, and idle connections are closed. */
  drain(): void {
    this.draining = true;
    this.server.closeIdleConnections();
  }

  private served(socket: unknown): ServedConnection | undefined {
    return (socket as WithServed | null)?.[SERVED];
  }

  /** The request as the layers see it; `host` moves to `authority`, hop-by-hop fields are left out (kept for an upgrade). */
  private toRequest(req: http.IncomingMessage, keepHopByHop = false): { request: L7Request; headers: Headers } {
    const raw = req.headers as Headers;
    const authority = typeof raw.host === 'string' ? raw.host : '';
    const headers = keepHopByHop ? raw : withoutHopByHop(raw, false);
    delete headers.host;
    const request: L7Request = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authority,
      scheme: 'http',
      headers,
      body: null,
      version: 'http1',
    };
    return { request, headers };
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const served = this.served(req.socket);
    if (!served) {
      res.writeHead(500).end();
      return;
    }
    if (req.httpVersionMajor !== 1) {
      served.onClientError(HTTP09);
      res.shouldKeepAlive = false;
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end(HTTP09_ANSWER);
      req.resume();
      return;
    }
    // A body is there when the framing says so; otherwise the (already ended) message is just drained.
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const { request, headers } = this.toRequest(req);
    const rc = newRequestContext(served.conn, headers);
    const requestBytes = countPushed(req);
    if (hasBody) request.body = req;
    else req.resume();
    const x: Exchange = { answer: null, responseBytes: 0 };
    // 'close' comes once per response, answered or not: the one place the exchange is settled.
    res.once('close', () => {
      const complete = res.writableFinished;
      if (!complete) abortExchange(rc);
      settle(rc, x.answer ?? NO_ANSWER, { requestBytes: requestBytes(), responseBytes: x.responseBytes, downstreamReset: !complete, trailers: null });
    });
    served.handler(request, rc).then(
      (answer) => {
        x.answer = answer;
        this.respond(res, answer, rc, x);
      },
      (err: unknown) => {
        this.log.error({ err }, 'L7 handler failed (a layer broke its contract); answering 500');
        if (!res.headersSent && !res.destroyed) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
      },
    );
  }

  private respond(res: http.ServerResponse, answer: L7Response, rc: RequestContext, x: Exchange): void {
    const body = answer.body;
    if (res.destroyed) {
      if (body !== null && !Buffer.isBuffer(body)) body.abort(new Error('the client went away'));
      return;
    }
    const headers = answer.headers;
    if (this.draining) headers.connection = 'close';
    try {
      res.writeHead(answer.status, answer.trailers && body === null ? { ...headers, ...answer.trailers } : headers);
    } catch (err) {
      // A header value Node refuses to write (invalid characters from upstream): the client gets 502.
      this.log.debug({ err }, 'cannot write the upstream response head');
      rc.flags.push('UPE');
      x.answer = { status: 502, headers: {}, body: null };
      res.writeHead(502, { 'content-type': 'text/plain' }).end('upstream sent an invalid response header\n');
      if (body !== null && !Buffer.isBuffer(body)) body.abort(new Error('invalid response head'));
      return;
    }
    if (body === null) {
      res.end();
      return;
    }
    if (Buffer.isBuffer(body)) {
      x.responseBytes = body.length;
      res.end(body);
      return;
    }
    const sink: BodySink = {
      write(chunk) {
        x.responseBytes += chunk.length;
        return res.write(chunk);
      },
      end(trailers) {
        if (trailers) {
          try {
            res.addTrailers(trailers as http.OutgoingHttpHeaders);
          } catch {
            // trailers on a response that is not chunked are dropped, as HTTP/1.1 requires
          }
        }
        res.end();
      },
      fail(err) {
        rc.flags.push('UC');
        rc.detail = `upstream reset mid-response: ${err.message}`;
        res.destroy(err);
      },
    };
    res.on('drain', () => body.resume());
    rc.onAbort = () => body.abort(new Error('the client went away'));
    // What the upstream sent already (often the whole of a small answer) goes out with the head in one
    // write, not a write per chunk.
    res.socket?.cork();
    body.pipe(sink);
    process.nextTick(() => res.socket?.uncork());
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const served = this.served(req.socket);
    if (!served) {
      socket.destroy();
      return;
    }
    if (req.httpVersionMajor !== 1) {
      served.onClientError(HTTP09);
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(HTTP09_ANSWER)}\r\nconnection: close\r\n\r\n${HTTP09_ANSWER}`);
      return;
    }
    const { request, headers } = this.toRequest(req, true);
    delete headers.host;
    // Keep `connection: upgrade` and `upgrade: …`: they are this exchange's point.
    request.upgrade = { socket, head };
    const rc = newRequestContext(served.conn, headers);
    served.handler(request, rc).then(
      (answer) => {
        if (answer.tunnel) {
          answer.tunnel.then((t) => settle(rc, answer, { requestBytes: t.bytesUp, responseBytes: t.bytesDown, downstreamReset: t.error !== null, trailers: null }));
          return;
        }
        // Not upgraded (no route, denied, no upstream): the local answer, then close.
        const body = Buffer.isBuffer(answer.body) ? answer.body : Buffer.alloc(0);
        const lines = [`HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status] ?? ''}`];
        for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
        lines.push('connection: close');
        socket.end(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body]));
        settle(rc, answer, { requestBytes: 0, responseBytes: body.length, downstreamReset: false, trailers: null });
      },
      () => socket.destroy(),
    );
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? 'HPE_UNKNOWN';
    // Node's parser stays attached after an error: the rest of an oversized head, arriving after the answer,
    // errors again on the same connection. It was counted and answered once; the rest is dropped.
    if (this.refused.has(socket)) {
      socket.destroy();
      return;
    }
    this.refused.add(socket);
    // Only the parser's verdicts (and a head that never finished) are malformed requests. A socket error is
    // the peer going away: a client's reset, or a source agent's pool closing an idle tunnel (the stream's
    // reset reaches here as ECONNRESET); a request in flight is settled as a downstream reset on its own.
    if (!code.startsWith('HPE_') && code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.destroy();
      return;
    }
    this.served(socket)?.onClientError(code);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = `${status === 431 ? 'request header fields too large' : status === 408 ? 'request timeout' : 'bad request'}: ${(err as { reason?: string }).reason ?? err.message} (${code})\n`;
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(reason)}\r\nconnection: close\r\n\r\n${reason}`);
  }
}
