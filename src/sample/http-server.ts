// `nodemesh sample http`: an HTTP/1.1 and h2c server that reports who answered and who asked (JSON), with
// query controls for L7 tests (delay, status, counted failures, chunked, trailers), /bytes/N and a /ws echo.

import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { SampleError } from './errors';
import { FailKeys } from './fail-keys';
import { failKey, parseControls, type HttpControls } from './http-controls';
import { websocketEcho } from './websocket-echo';

export interface HttpServerOptions {
  port: number;
  host?: string;
  name: string;
  version: string;
  /** Pod name reported in answers; defaults to $POD_NAME, then the host name (a pod's, in Kubernetes). */
  pod?: string;
  /** Keys `?fail=N` counts at most (least recently used go first). */
  maxFailKeys?: number;
}

export interface SampleHttpServer {
  readonly port: number;
  readonly failKeys: FailKeys;
  /** Stops listening, lets answers under way finish for up to `graceMs`, then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

export const MAX_BYTES = 1 << 30;
/** Longer than any load test's idle gap, and than Node's and most proxies' client-side idle timeouts. */
export const KEEP_ALIVE_MS = 120_000;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** What the handler needs from a request and a response; both HTTP/1.1's and http2's compat objects fit. */
type Request = Readable & Pick<http.IncomingMessage, 'url' | 'method' | 'headers' | 'httpVersion'> & { socket: { remoteAddress?: string; remotePort?: number } };
interface Response {
  writeHead(status: number, headers: http.OutgoingHttpHeaders): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  end(chunk: string): unknown;
  addTrailers(trailers: Record<string, string>): void;
  once(event: 'drain', f: () => void): unknown;
  on(event: 'close', f: () => void): unknown;
}

/** A failure that is no answer: HTTP/2 resets the stream, HTTP/1.1 the TCP connection (RST, not FIN). */
function reset(req: Request): void {
  const stream = (req as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else (req.socket as net.Socket).resetAndDestroy();
}

/** Streams n bytes without holding them in memory (load tests ask for large bodies). */
function sendBytes(res: Response, n: number, headers: http.OutgoingHttpHeaders): void {
  res.writeHead(200, { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(n) });
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const len = Math.min(left, CHUNK.length);
      left -= len;
      if (!res.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

/** Writes a JSON answer; chunked and trailer answers go out in several writes, so several chunks. */
function sendJson(res: Response, status: number, headers: http.OutgoingHttpHeaders, body: unknown, c: Pick<HttpControls, 'chunked' | 'trailers'>, noBody: boolean): void {
  const text = JSON.stringify(body);
  const h: http.OutgoingHttpHeaders = { ...headers, 'content-type': 'application/json' };
  if (noBody) {
    res.writeHead(status, h);
    res.end();
    return;
  }
  if (!c.chunked && !c.trailers) {
    res.writeHead(status, { ...h, 'content-length': Buffer.byteLength(text) });
    // A string, not a Buffer: Node then sends head and body in one write instead of a writev.
    res.end(text);
    return;
  }
  const buf = Buffer.from(text);
  if (c.trailers) h.trailer = 'x-body-sha256';
  res.writeHead(status, h);
  const step = Math.max(1, Math.ceil(buf.length / 4));
  for (let o = 0; o < buf.length; o += step) res.write(buf.subarray(o, o + step));
  if (c.trailers) res.addTrailers({ 'x-body-sha256': createHash('sha256').update(buf).digest('hex') });
  res.end();
}

export function startSampleHttpServer(opts: HttpServerOptions): Promise<SampleHttpServer> {
  const pod = opts.pod ?? process.env.POD_NAME ?? os.hostname();
  const failKeys = new FailKeys(opts.maxFailKeys);
  let closing = false;

  // HTTP/1.1 connections and how many answers each has under way: close() ends the idle ones at once.
  const h1Busy = new Map<net.Socket, number>();
  const handle = (req: Request, res: Response): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const sock = req.socket as net.Socket;
    const h1Sock = h1Busy.has(sock);
    if (h1Sock) {
      h1Busy.set(sock, (h1Busy.get(sock) ?? 0) + 1);
      res.on('close', () => {
        const busy = h1Busy.get(sock);
        if (busy !== undefined) h1Busy.set(sock, busy - 1);
      });
    }
    // Called when the answer starts: once closing, HTTP/1.1 answers end their connection (HTTP/2
    // sessions got a GOAWAY instead).
    const served = (): http.OutgoingHttpHeaders => (closing && h1Sock ? { 'x-served-by': pod, connection: 'close' } : { 'x-served-by': pod });
    const who = { name: opts.name, version: opts.version, pod };
    const m = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      req.resume();
      const n = Number(m[1]);
      if (n <= MAX_BYTES) return sendBytes(res, n, served());
      return sendJson(res, 400, served(), { ...who, status: 400, error: `/bytes/N: at most ${MAX_BYTES} bytes`, code: 'NM_SAMPLE_BAD_QUERY' }, { chunked: false, trailers: false }, false);
    }
    let c: HttpControls;
    let fail: { key: string; attempt: number; failed: boolean } | undefined;
    try {
      c = parseControls(url.searchParams);
      if (c.fail > 0) {
        const key = failKey(req.headers['x-fail-key']);
        const attempt = failKeys.hit(key);
        fail = { key, attempt, failed: attempt <= c.fail };
      }
    } catch (e) {
      req.resume();
      const err = e as SampleError;
      return sendJson(res, 400, served(), { ...who, status: 400, error: err.message, code: err.code }, { chunked: false, trailers: false }, false);
    }
    // The body is hashed as it streams, so uploads of any size are checked without being held.
    let hash: Hash | undefined;
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      (hash ??= createHash('sha256')).update(chunk);
    });
    req.on('end', () => {
      const status = fail?.failed ? c.failStatus : c.status;
      const withBody = bytes > 0 || ['POST', 'PUT', 'PATCH'].includes(req.method ?? '');
      const body = {
        ...who,
        path: url.pathname + url.search,
        method: req.method,
        headers: req.headers,
        peer: { address: req.socket.remoteAddress, port: req.socket.remotePort },
        status,
        httpVersion: req.httpVersion,
        ...(withBody ? { requestBody: { bytes, sha256: (hash ?? createHash('sha256')).digest('hex') } } : {}),
        ...(fail ? { fail } : {}),
      };
      // No body on HEAD, 204 and 304 (RFC 9110 6.4.1); http2 refuses to send one there.
      const noBody = req.method === 'HEAD' || status === 204 || status === 304;
      const send = (): void => {
        if (fail?.failed && c.failReset) return reset(req);
        sendJson(res, status, served(), body, c, noBody);
      };
      const delayMs = fail?.failed && c.failDelayMs !== null ? c.failDelayMs : c.delayMs;
      if (delayMs === 0) return send();
      const timer = setTimeout(send, delayMs);
      // A client that gives up cancels the wait: delayed answers never pile up.
      res.on('close', () => clearTimeout(timer));
    });
  };

  const h1 = http.createServer(handle);
  h1.keepAliveTimeout = KEEP_ALIVE_MS;
  const websocket = websocketEcho(pod);
  h1.on('upgrade', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
    if ((req.headers.upgrade ?? '').toLowerCase() === 'websocket') {
      h1Busy.delete(sock); // a WebSocket now: not an idle HTTP/1.1 connection for close() to end
      return websocket(req, sock, head);
    }
    // Any other upgrade (`curl --http2` asks for h2c) is declined, as RFC 9110 7.8 allows, by
    // answering over HTTP/1.1. Node hands every Upgrade request to this listener with the parser
    // already detached, so the answer is written here and the connection closed after it.
    const res = new http.ServerResponse(req);
    res.assignSocket(sock);
    res.shouldKeepAlive = false;
    res.on('finish', () => {
      res.detachSocket(sock);
      sock.end();
    });
    handle(req, res);
  });
  const h2 = http2.createServer(handle);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    // A connection accepted before close() may only now have sent its preface.
    if (closing) s.close();
  });

  // One port for both: a connection that starts with the HTTP/2 preface (prior knowledge, as gRPC
  // and `curl --http2-prior-knowledge` send it) goes to the http2 server, any other to HTTP/1.1.
  // Two bytes decide: no HTTP/1.1 method starts with "PR".
  const sockets = new Set<net.Socket>();
  // noDelay as http.Server sets it for the sockets it accepts itself: answers leave at once.
  const front = net.createServer({ noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => {
      sockets.delete(sock);
      h1Busy.delete(sock);
    });
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const maybeH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (maybeH2 && n < 2) return;
      sock.off('data', onData);
      sock.pause();
      sock.unshift(seen);
      if (maybeH2) {
        // http2 reads what is buffered on the socket itself, then takes the socket's handle over.
        h2.emit('connection', sock);
        return;
      }
      h1Busy.set(sock, 0);
      h1.emit('connection', sock);
      // The HTTP/1.1 parser reads through 'data' events: the socket must flow again.
      sock.resume();
    };
    sock.on('data', onData);
    sock.on('error', () => sock.destroy());
  });

  const close = async (graceMs = 1000): Promise<void> => {
    closing = true;
    front.close();
    for (const [sock, busy] of h1Busy) if (busy === 0) sock.end();
    for (const s of sessions) s.close();
    const until = Date.now() + graceMs;
    while (sockets.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) s.destroy();
  };

  return new Promise((resolve, reject) => {
    front.once('error', reject);
    front.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' }, () => {
      front.off('error', reject);
      resolve({ port: (front.address() as net.AddressInfo).port, failKeys, close });
    });
  });
}
