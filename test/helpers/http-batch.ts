// Run inside a pod: sends HTTP/1.1 requests one after another (never following redirects) and prints one JSON
// line per answer: status, response headers, the body (parsed when it is JSON), or the error.
//
//   node http-batch.js '[{"url": "http://198.18.130.10/", "headers": {"Host": "echo"}}, ...]'

import http from 'node:http';

export interface BatchRequest {
  url: string;
  method?: string;
  /** Sent as written (name case kept); `Host` replaces the URL's. */
  headers?: Record<string, string>;
  body?: string;
}

export interface BatchAnswer {
  status: number | null;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  error?: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function send(r: BatchRequest): Promise<BatchAnswer> {
  return new Promise((resolve) => {
    const u = new URL(r.url);
    const headers: Record<string, string> = { ...r.headers };
    if (r.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(r.body));
    const req = http.request({ host: u.hostname, port: u.port || 80, path: u.pathname + u.search, method: r.method ?? 'GET', headers, agent, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        if (/json/.test(res.headers['content-type'] ?? '')) {
          try {
            body = JSON.parse(text);
          } catch {
            // kept as text
          }
        }
        resolve({ status: res.statusCode ?? null, headers: res.headers, body });
      });
      res.on('error', (e) => resolve({ status: null, headers: {}, body: null, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => resolve({ status: null, headers: {}, body: null, error: e.message }));
    req.end(r.body);
  });
}

async function main(): Promise<void> {
  const list = JSON.parse(process.argv[2] ?? '[]') as BatchRequest[];
  for (const r of list) process.stdout.write(`${JSON.stringify(await send(r))}\n`);
  agent.destroy();
}

// Imported for its types by the tests that run it.
if (require.main === module) void main();
