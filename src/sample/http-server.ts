// `nodemesh sample http`: an HTTP server that reports who answered and who asked (JSON), plus /bytes/N.

import http from 'node:http';

export interface HttpServerOptions {
  port: number;
  host?: string;
  name: string;
  version: string;
  /** Pod name reported in answers; defaults to $POD_NAME. */
  pod?: string;
}

export const MAX_BYTES = 1 << 30;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** Streams n bytes without holding them in memory (load tests ask for large bodies). */
function sendBytes(res: http.ServerResponse, n: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
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

export function createSampleHttpServer(opts: HttpServerOptions): http.Server {
  const pod = opts.pod ?? process.env.POD_NAME ?? '';
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      const n = Number(m[1]);
      if (n > MAX_BYTES) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `at most ${MAX_BYTES} bytes` }));
        return;
      }
      req.resume();
      sendBytes(res, n);
      return;
    }
    // Drain the request body so keep-alive connections stay usable.
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({
        name: opts.name,
        version: opts.version,
        pod,
        path: url.pathname + url.search,
        method: req.method,
        headers: req.headers,
        peer: { address: req.socket.remoteAddress, port: req.socket.remotePort },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
}

export function startSampleHttpServer(opts: HttpServerOptions): Promise<http.Server> {
  const server = createSampleHttpServer(opts);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
