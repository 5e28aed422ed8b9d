// Run inside a pod: an HTTP server that answers 500 while a flag file exists, 200 otherwise, DELAY_MS after
// the request ended, each answer saying which pod served it (x-served-by, as the http sample does).
// Outlier-detection and balancing tests make one endpoint of several bad or slow, without touching the others.
//   node flaky-http.js PORT FLAG_FILE [DELAY_MS]

import fs from 'node:fs';
import http from 'node:http';

const [port, flag, delay] = process.argv.slice(2);
const delayMs = Number(delay ?? 0);
const pod = process.env.POD_NAME ?? 'flaky';
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => setTimeout(answer, delayMs));
  const answer = (): void => {
    const failing = fs.existsSync(flag!);
    const body = JSON.stringify({ pod, failing });
    res.writeHead(failing ? 500 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-served-by': pod });
    res.end(body);
  };
});
server.listen(Number(port), '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
