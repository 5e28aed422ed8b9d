// `nodemesh sample client`: sequential HTTP GETs, one JSON line per answer; non-zero exit on any failure.

import http from 'node:http';

export interface ClientOptions {
  url: string;
  count: number;
  timeoutMs: number;
  headers?: Record<string, string>;
  /** Open a new connection per request instead of reusing one keep-alive connection. */
  newConnections?: boolean;
}

export interface ClientResult {
  i: number;
  ok: boolean;
  status?: number;
  ms: number;
  bytes?: number;
  /** The parsed JSON answer when it is small JSON (the sample http server's report). */
  body?: unknown;
  error?: string;
}

const BODY_LIMIT = 64 * 1024;

export function getOnce(url: string, timeoutMs: number, i: number, headers: Record<string, string> = {}, agent: http.Agent | false = false): Promise<ClientResult> {
  const t0 = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes <= BODY_LIMIT) chunks.push(c);
      });
      res.on('end', () => {
        let body: unknown;
        if (bytes <= BODY_LIMIT && /json/.test(res.headers['content-type'] ?? '')) {
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = undefined;
          }
        }
        const status = res.statusCode ?? 0;
        resolve({ i, ok: status >= 200 && status < 300, status, ms: ms(), bytes, body });
      });
      res.on('error', (e) => resolve({ i, ok: false, ms: ms(), error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ i, ok: false, ms: ms(), error: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

/** Runs the requests, writing each result as a JSON line; resolves with the number of failures. */
export async function runClient(opts: ClientOptions, out: (line: string) => void): Promise<number> {
  // One socket, kept alive: requests go over one connection, as a real client's pool would.
  const agent = opts.newConnections ? false : new http.Agent({ keepAlive: true, maxSockets: 1 });
  let failures = 0;
  try {
    for (let i = 0; i < opts.count; i++) {
      const r = await getOnce(opts.url, opts.timeoutMs, i, opts.headers, agent);
      if (!r.ok) failures++;
      out(JSON.stringify(r));
    }
  } finally {
    if (agent) agent.destroy();
  }
  return failures;
}
