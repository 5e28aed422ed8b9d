// Run inside a pod: one request per key (header NAME: KEY-i, i < COUNT), one after another on a keep-alive
// connection; prints {"KEY-i": "pod that served it"} (x-served-by). Consistent-hash tests compare two runs.
//   node hash-keys.js URL NAME COUNT

import http from 'node:http';

const [url, name, count] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url!, { agent, headers: { [name!]: key } }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers['x-served-by'] ?? `status-${res.statusCode}`)));
    });
    req.on('error', reject);
  });
}

void (async () => {
  const out: Record<string, string> = {};
  for (let i = 0; i < Number(count); i++) out[`key-${i}`] = await get(`key-${i}`);
  process.stdout.write(JSON.stringify(out) + '\n');
  agent.destroy();
})();
