// The HTTP servers of the agent and the control plane (admin, metrics, readiness, enrollment, debug): bounded
// bodies, head and body deadlines, a cap on connections; JSON replies, unix sockets.

import fs from 'node:fs';
import http from 'node:http';
import { CountedLog } from '../telemetry/counted-log';
import type { Logger } from '../telemetry/logger';

/**
 * What one request or client may take from a listener. Every listener gets all four: the agent's metrics
 * and readiness ports face the network, and a unix socket faces every process that may open it.
 */
export interface HttpServerLimits {
  /** Largest request body; a larger one is answered 413 without being read, and the connection closed. */
  maxBodyBytes: number;
  /** The request head must have arrived by then (from the connection's start, or the previous request's end); else 408. */
  headersTimeoutMs: number;
  /** The whole request, body included, must have arrived by then; else 408. A slow handler is not timed. */
  requestTimeoutMs: number;
  /** Connections open at once (idle keep-alive ones included); more are closed at accept. */
  maxConnections: number;
}

/** Nothing these listeners serve needs a body beyond a few KB (an enrollment request is the largest). */
export const DEFAULT_HTTP_LIMITS: HttpServerLimits = { maxBodyBytes: 64 * 1024, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, maxConnections: 64 };

/** Node checks its head and request deadlines this often (its default, 30 s, would let a deadline run 30 s late). */
const DEADLINE_CHECK_MS = 1_000;

/** A request handler that gets the whole body, already read within the limits. */
export type BodyHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface BoundedServerOptions extends Partial<HttpServerLimits> {
  /** Names the listener in logs (e.g. "admin", "enrollment"). */
  name: string;
  log?: Logger;
}

/**
 * An HTTP server within `HttpServerLimits` (defaults: DEFAULT_HTTP_LIMITS). The body is read before `handler`
 * runs; one over the limit is answered 413 (a JSON error, `NM_HTTP_BODY_TOO_LARGE`) and no more of it is read.
 * Late heads and bodies get Node's 408. Connections over the cap are closed at accept and logged as a count.
 */
export function createBoundedServer(handler: BodyHandler, opts: BoundedServerOptions): http.Server {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...definedOnly(opts) };
  const server = http.createServer(
    { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: DEADLINE_CHECK_MS },
    (req, res) => readLimited(req, res, limits.maxBodyBytes, handler),
  );
  server.maxConnections = limits.maxConnections;
  if (opts.log) {
    const dropped = new CountedLog(opts.log, 'warn', `${opts.name} listener: connection refused, ${limits.maxConnections} already open`);
    server.on('drop', (d?: { remoteAddress?: string }) => dropped.record('over the connection cap', { peer: d?.remoteAddress ?? 'local' }));
    server.on('close', () => dropped.close());
  }
  return server;
}

function definedOnly(o: Partial<HttpServerLimits>): Partial<HttpServerLimits> {
  const out: Partial<HttpServerLimits> = {};
  for (const k of ['maxBodyBytes', 'headersTimeoutMs', 'requestTimeoutMs', 'maxConnections'] as const) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function readLimited(req: http.IncomingMessage, res: http.ServerResponse, limit: number, handler: BodyHandler): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    tooLarge(res, limit);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  req.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    if (size > limit) {
      over = true;
      chunks.length = 0;
      req.pause();
      tooLarge(res, limit);
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (!over) handler(req, res, Buffer.concat(chunks));
  });
  // the client went away mid-body: nothing to answer
  req.on('error', () => undefined);
}

/** 413 and close: Node closes the connection once the answer is written, so the rest of the body is never read. */
function tooLarge(res: http.ServerResponse, limit: number): void {
  const text = JSON.stringify({ error: { code: 'NM_HTTP_BODY_TOO_LARGE', message: `request body exceeds ${limit} bytes` } }) + '\n';
  res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
  res.end(text);
}

/** JSON.stringify that renders bigint (BPF counters, cookies) as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = toJson(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendText(res: http.ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Listens on a unix socket, replacing a stale socket file left by a killed process. */
export async function listenUnix(server: http.Server, path: string): Promise<void> {
  try {
    fs.unlinkSync(path);
  } catch {
    // no stale socket
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(path, 0o600);
}

export async function listenTcp(server: http.Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
