// Run inside a pod: an HTTP/1.1 server whose first N requests per `x-fail-key` (`?fail=N`) are answered 503
// as soon as their head arrives, without waiting for the body: the failure reaches the client while it is still
// sending (a streaming request). Later requests read the body and answer 200 with its size and sha256.
// `GET /hits?key=K` tells how many requests carrying key K arrived, so a test can count attempts.
//   node early-fail-http.js PORT

import { createHash } from 'node:crypto';
import http from 'node:http';

const port = Number(process.argv[2] ?? 8080);
const pod = process.env.POD_NAME ?? 'early-fail';
const hits = new Map<string, number>();

const send = (res: http.ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-served-by': pod });
  res.end(text);
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/hits') {
    req.resume();
    return send(res, 200, { pod, hits: hits.get(url.searchParams.get('key') ?? '') ?? 0 });
  }
  const key = String(req.headers['x-fail-key'] ?? '');
  const n = (hits.get(key) ?? 0) + 1;
  hits.set(key, n);
  if (n <= Number(url.searchParams.get('fail') ?? 0)) {
    // Answered at once; the rest of the body is read and dropped by Node after the answer.
    return send(res, 503, { pod, attempt: n, failed: true });
  }
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  req.on('end', () => send(res, 200, { pod, attempt: n, requestBody: { bytes, sha256: hash.digest('hex') } }));
});
server.listen(port, '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
