// Run inside a pod: one request whose body is still being sent when the answer comes: a piece every 100 ms
// until the answer's head arrives (at most 10 s), the last one after it. Prints one JSON line: the status, the
// answer (JSON body, or for gRPC the head), and how many pieces went out before the answer.
//   node streaming-post.js URL FAIL_KEY [NEXT_URL] HTTP/1.1 POST, chunked body of 1 KiB chunks; then a GET of
//                                                  NEXT_URL on the same keep-alive client
//   node streaming-post.js URL FAIL_KEY grpc       a gRPC client-streaming call over h2c (length-prefixed messages)
//   node streaming-post.js URL FAIL_KEY grpc-whole the same call with all 3 messages sent and ended at once

import http from 'node:http';
import http2 from 'node:http2';

const [url, key, mode] = process.argv.slice(2);
const out = (o: unknown): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

/** One gRPC message: the 5-byte prefix (not compressed, length), then the bytes. */
export function grpcMessage(i: number): Buffer {
  const payload = Buffer.from(`message ${i} `.padEnd(512, '.'));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

/** Sends pieces every 100 ms until `answered()`, then calls `last`. */
function stream(write: (i: number) => void, answered: () => boolean, last: () => void): () => number {
  let sent = 0;
  const pump = (): void => {
    if (answered()) return;
    if (sent >= 100) return last();
    write(sent++);
    setTimeout(pump, 100);
  };
  pump();
  return () => sent;
}

function json(parts: Buffer[]): unknown {
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Then a GET of `next` on the same keep-alive client: served as its own request, whether or not on the same connection. */
function h1(next: string | undefined): void {
  const chunk = Buffer.alloc(1024, 's');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let answered = false;
  let sent = (): number => 0;
  const req = http.request(url!, { method: 'POST', headers: { 'x-fail-key': key!, 'transfer-encoding': 'chunked' }, agent }, (res) => {
    answered = true;
    const before = sent();
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('end', () => {
      const first = { status: res.statusCode, body: json(parts), chunksBeforeAnswer: before };
      if (!next) {
        out(first);
        agent.destroy();
        return;
      }
      const socket = req.socket;
      const again = http.get(next, { agent }, (r) => {
        const p: Buffer[] = [];
        r.on('data', (c: Buffer) => p.push(c));
        r.on('end', () => {
          out({ ...first, next: { status: r.statusCode, body: json(p), sameConnection: r.socket === socket } });
          agent.destroy();
        });
      });
      again.on('error', (e) => {
        out({ ...first, next: { status: null, error: e.message } });
        agent.destroy();
      });
    });
    // The body ends only now: the upstream answered while it was streaming.
    req.end(chunk);
  });
  req.on('error', (e) => out({ status: null, error: e.message, chunksBeforeAnswer: sent() }));
  sent = stream(() => req.write(chunk), () => answered || req.destroyed, () => req.end());
}

function grpc(whole: boolean): void {
  const u = new URL(url!);
  const session = http2.connect(u.origin);
  session.on('error', (e) => out({ status: null, error: e.message }));
  const req = session.request({ ':method': 'POST', ':path': u.pathname, 'content-type': 'application/grpc', te: 'trailers', 'x-fail-key': key! });
  let answered = false;
  let sent = (): number => 0;
  let head: http2.IncomingHttpHeaders = {};
  let before = 0;
  req.on('response', (h) => {
    answered = true;
    head = h;
    before = sent();
    if (!req.writableEnded) req.end(grpcMessage(before));
  });
  let trailers: http2.IncomingHttpHeaders = {};
  req.on('trailers', (t) => (trailers = t));
  req.on('data', () => undefined);
  req.on('close', () => {
    const grpcStatus = head['grpc-status'] ?? trailers['grpc-status'];
    out({ status: head[':status'] ?? null, grpcStatus: grpcStatus === undefined ? null : Number(grpcStatus), head, messagesBeforeAnswer: before, rst: req.rstCode });
    session.close();
  });
  if (whole) {
    const all = [0, 1, 2].map(grpcMessage);
    sent = () => all.length;
    req.end(Buffer.concat(all));
    return;
  }
  sent = stream((i) => req.write(grpcMessage(i)), () => answered || req.destroyed, () => req.end());
}

// Imported by the tests for grpcMessage.
if (require.main === module) {
  if (mode === 'grpc' || mode === 'grpc-whole') grpc(mode === 'grpc-whole');
  else h1(mode);
}
