// Run inside a pod: an h2c gRPC server whose first call per `x-fail-key` is answered at once, at its head, with a
// trailers-only UNAVAILABLE (grpc-status 14): the failure reaches a client-streaming caller while it is still
// sending. Later calls are read to their end and answered trailers-only OK, with the attempt number and the
// request's size and sha256 in the head. A GET of /hits/KEY answers (JSON) how many calls carried key KEY.
//   node early-fail-grpc.js PORT

import { createHash } from 'node:crypto';
import http2 from 'node:http2';

const pod = process.env.POD_NAME ?? 'early-fail-grpc';
const hits = new Map<string, number>();
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  stream.on('error', () => undefined);
  const head = { ':status': 200, 'content-type': 'application/grpc', 'x-served-by': pod };
  const path = String(headers[':path'] ?? '');
  if (path.startsWith('/hits/')) {
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-served-by': pod });
    stream.end(JSON.stringify({ pod, hits: hits.get(path.slice('/hits/'.length)) ?? 0 }));
    return;
  }
  const key = String(headers['x-fail-key'] ?? '');
  const n = (hits.get(key) ?? 0) + 1;
  hits.set(key, n);
  if (n === 1) {
    stream.resume();
    stream.respond({ ...head, 'grpc-status': '14', 'grpc-message': `${pod} is unavailable to the first call`, 'x-attempt': String(n) }, { endStream: true });
    return;
  }
  const hash = createHash('sha256');
  let bytes = 0;
  stream.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  stream.on('end', () => {
    stream.respond({ ...head, 'grpc-status': '0', 'x-attempt': String(n), 'x-request-bytes': String(bytes), 'x-request-sha256': hash.digest('hex') }, { endStream: true });
  });
});
server.listen(Number(process.argv[2]), '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
