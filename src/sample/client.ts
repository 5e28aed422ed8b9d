// `nodemesh sample client`: HTTP/1.1 or h2c requests, one JSON line per answer, a summary per pod and version.

import http from 'node:http';
import http2 from 'node:http2';
import { SampleError } from './errors';
import { Tally, type TallySummary } from './tally';

export interface ClientOptions {
  url: string;
  /** Requests to send; without it, 1 (or as many as `durationMs` allows). */
  count?: number;
  /** Stop starting requests after this long. */
  durationMs?: number;
  /** Requests in flight at once (HTTP/1.1: as many keep-alive connections; h2c: streams of one connection). */
  concurrency?: number;
  timeoutMs: number;
  method?: string;
  headers?: Record<string, string>;
  /** Request body: these bytes, or `bodyBytes` bytes of 'x' streamed without being held. */
  body?: Buffer;
  bodyBytes?: number;
  /** HTTP/2 over cleartext with prior knowledge (no Upgrade), as gRPC clients speak it. */
  http2?: boolean;
  /** Open a new connection per request instead of reusing keep-alive connections. */
  newConnections?: boolean;
  /** Print the per-request lines (default true). */
  lines?: boolean;
}

export interface ClientResult {
  i: number;
  ok: boolean;
  status?: number;
  ms: number;
  bytes?: number;
  /** The answer's `x-served-by` header (the sample http server's pod). */
  servedBy?: string;
  /** The parsed JSON answer when it is small JSON (the sample http server's report). */
  body?: unknown;
  /** Trailers received after the body (`?trailers=1` on the sample http server). */
  trailers?: Record<string, string>;
  error?: string;
}

export type ClientSummary = Omit<TallySummary, 'byOutcome'> & { byStatus: Record<string, number> };

const BODY_LIMIT = 64 * 1024;
const FILL = Buffer.alloc(64 * 1024, 'x');

/** Reads an answer: counts its bytes, keeps small JSON bodies, collects trailers. */
class Reader {
  private readonly chunks: Buffer[] = [];
  bytes = 0;
  trailers: Record<string, string> | undefined;

  data(c: Buffer): void {
    this.bytes += c.length;
    if (this.bytes <= BODY_LIMIT) this.chunks.push(c);
  }

  addTrailers(t: Record<string, string | string[] | undefined>): void {
    for (const [k, v] of Object.entries(t)) if (v !== undefined && !k.startsWith(':')) (this.trailers ??= {})[k] = String(v);
  }

  result(i: number, ms: number, status: number, headers: http.IncomingHttpHeaders): ClientResult {
    let body: unknown;
    if (this.bytes <= BODY_LIMIT && /json/.test(headers['content-type'] ?? '')) {
      try {
        body = JSON.parse(Buffer.concat(this.chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
    }
    const servedBy = headers['x-served-by'];
    const r: ClientResult = { i, ok: status >= 200 && status < 300, status, ms, bytes: this.bytes };
    if (typeof servedBy === 'string') r.servedBy = servedBy;
    r.body = body;
    if (this.trailers) r.trailers = this.trailers;
    return r;
  }
}

/** Writes the request body; with `expect: 100-continue` only once the server asked for it. */
function sendBody(req: NodeJS.WritableStream & { once(e: 'continue', f: () => void): unknown }, opts: ClientOptions, expect: boolean): void {
  const write = (): void => {
    if (opts.body) {
      req.end(opts.body);
      return;
    }
    let left = opts.bodyBytes ?? 0;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, FILL.length);
        left -= n;
        if (!req.write(n === FILL.length ? FILL : FILL.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  };
  if (expect) req.once('continue', write);
  else write();
}

function bodyLength(opts: ClientOptions): number | undefined {
  return opts.body ? opts.body.length : opts.bodyBytes !== undefined ? opts.bodyBytes : undefined;
}

function elapsed(t0: bigint): number {
  return Math.round((Number(process.hrtime.bigint() - t0) / 1e6) * 1000) / 1000;
}

function expects(headers: Record<string, string>): boolean {
  return Object.entries(headers).some(([k, v]) => k.toLowerCase() === 'expect' && v.toLowerCase() === '100-continue');
}

/** One HTTP/1.1 request; never rejects (a failure is a result with `error`). */
export function http1Once(opts: ClientOptions, i: number, agent: http.Agent | false): Promise<ClientResult> {
  const t0 = process.hrtime.bigint();
  const headers: Record<string, string> = { ...opts.headers };
  const len = bodyLength(opts);
  if (len !== undefined) headers['content-length'] = String(len);
  return new Promise((resolve) => {
    const req = http.request(opts.url, { method: opts.method ?? 'GET', timeout: opts.timeoutMs, headers, agent }, (res) => {
      const rd = new Reader();
      res.on('data', (c: Buffer) => rd.data(c));
      res.on('end', () => {
        rd.addTrailers(res.trailers);
        resolve(rd.result(i, elapsed(t0), res.statusCode ?? 0, res.headers));
      });
      res.on('error', (e) => resolve({ i, ok: false, ms: elapsed(t0), error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${opts.timeoutMs} ms`)));
    req.on('error', (e) => resolve({ i, ok: false, ms: elapsed(t0), error: (e as NodeJS.ErrnoException).code ?? e.message }));
    if (len === undefined) req.end();
    else sendBody(req, opts, expects(headers));
  });
}

/** One h2c request on `session`; never rejects. */
export function http2Once(opts: ClientOptions, i: number, session: http2.ClientHttp2Session): Promise<ClientResult> {
  const t0 = process.hrtime.bigint();
  const url = new URL(opts.url);
  const headers: http2.OutgoingHttpHeaders = { ':method': opts.method ?? 'GET', ':path': url.pathname + url.search };
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase() === 'host' ? ':authority' : k.toLowerCase()] = v;
  const len = bodyLength(opts);
  if (len !== undefined) headers['content-length'] = String(len);
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ClientResult): void => {
      if (!done) resolve(r);
      done = true;
    };
    const fail = (e: Error): void => finish({ i, ok: false, ms: elapsed(t0), error: (e as NodeJS.ErrnoException).code ?? e.message });
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers, { endStream: len === undefined });
    } catch (e) {
      return fail(e as Error);
    }
    const rd = new Reader();
    let status = 0;
    let got: http.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      status = Number(h[':status']);
      got = h as http.IncomingHttpHeaders;
    });
    req.on('trailers', (t) => rd.addTrailers(t));
    req.on('data', (c: Buffer) => rd.data(c));
    req.on('end', () => finish(status ? rd.result(i, elapsed(t0), status, got) : { i, ok: false, ms: elapsed(t0), error: 'stream ended without an answer' }));
    req.on('close', () => finish({ i, ok: false, ms: elapsed(t0), error: `stream closed (code ${req.rstCode ?? 0})` }));
    req.on('error', fail);
    req.setTimeout(opts.timeoutMs, () => {
      fail(new Error(`timed out after ${opts.timeoutMs} ms`));
      req.close(http2.constants.NGHTTP2_CANCEL);
    });
    if (len !== undefined) sendBody(req, opts, expects(opts.headers ?? {}));
  });
}

/** Sends requests from `concurrency` workers; reuses connections unless asked not to. */
function transport(opts: ClientOptions): { send(i: number): Promise<ClientResult>; close(): void } {
  const concurrency = opts.concurrency ?? 1;
  if (!opts.http2) {
    // Keep-alive sockets, one per worker, as a real client's pool would hold them.
    const agent = opts.newConnections ? false : new http.Agent({ keepAlive: true, maxSockets: concurrency });
    return { send: (i) => http1Once(opts, i, agent), close: () => agent && agent.destroy() };
  }
  const origin = new URL(opts.url).origin;
  const connect = (): http2.ClientHttp2Session => {
    const s = http2.connect(origin);
    s.on('error', () => s.destroy());
    return s;
  };
  let shared: http2.ClientHttp2Session | undefined;
  return {
    send: async (i) => {
      if (opts.newConnections) {
        const s = connect();
        try {
          return await http2Once(opts, i, s);
        } finally {
          s.close();
        }
      }
      // One multiplexed connection for all workers; a new one if the server closed it (GOAWAY).
      if (!shared || shared.closed || shared.destroyed) shared = connect();
      return http2Once(opts, i, shared);
    },
    close: () => shared?.close(),
  };
}

/** Runs the requests, writing each result as a JSON line; resolves with the summary. */
export async function runClient(opts: ClientOptions, out: (line: string) => void): Promise<ClientSummary> {
  if (!/^http:\/\//i.test(opts.url) || !URL.canParse(opts.url)) throw new SampleError('NM_SAMPLE_BAD_ARG', `--url ${opts.url} is not an http:// URL`, 'give http://HOST:PORT/PATH; the sample client speaks cleartext only, h2c with --http2');
  const count = opts.count ?? (opts.durationMs !== undefined ? Infinity : 1);
  const until = opts.durationMs !== undefined ? Date.now() + opts.durationMs : Infinity;
  const t = transport(opts);
  const tally = new Tally();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < until) {
      const r = await t.send(next++);
      const body = r.body as { pod?: unknown; version?: unknown } | undefined;
      const pod = r.servedBy ?? (typeof body?.pod === 'string' ? body.pod : undefined);
      const version = typeof body?.version === 'string' ? body.version : undefined;
      tally.add({ ok: r.ok, outcome: r.status !== undefined ? String(r.status) : (r.error ?? 'error'), error: r.status === undefined, pod, version, ms: r.ms });
      if (opts.lines !== false) out(JSON.stringify(r));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, worker));
  } finally {
    t.close();
  }
  const { total, ok, failed, byOutcome, ...rest } = tally.summary();
  return { total, ok, failed, byStatus: byOutcome, ...rest };
}
