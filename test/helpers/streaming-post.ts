// Run inside a pod: one HTTP/1.1 POST with a chunked body that is still being sent when the answer comes: a
// chunk every 100 ms until the answer's head arrives (at most 10 s), the last one after it. Prints one JSON
// line: the status, the parsed body, and how many chunks went out before the answer.
//   node streaming-post.js URL FAIL_KEY

import http from 'node:http';

const [url, key] = process.argv.slice(2);
const chunk = Buffer.alloc(1024, 's');
let sent = 0;
let answered = false;
const out = (o: unknown): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

const req = http.request(url!, { method: 'POST', headers: { 'x-fail-key': key!, 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
  answered = true;
  const chunksBeforeAnswer = sent;
  const parts: Buffer[] = [];
  res.on('data', (c: Buffer) => parts.push(c));
  res.on('end', () => {
    let body: unknown = Buffer.concat(parts).toString('utf8');
    try {
      body = JSON.parse(body as string);
    } catch {
      // kept as text
    }
    out({ status: res.statusCode, body, chunksBeforeAnswer });
  });
  // The body ends only now: the upstream failed while it was streaming.
  req.end(chunk);
});
req.on('error', (e) => out({ status: null, error: e.message, chunksBeforeAnswer: sent }));
const pump = (): void => {
  if (answered || req.destroyed) return;
  if (sent >= 100) {
    req.end();
    return;
  }
  req.write(chunk);
  sent++;
  setTimeout(pump, 100);
};
pump();
