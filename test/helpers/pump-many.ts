// Run inside a pod: opens N concurrent connections to HOST:PORT, pumps BYTES through each, prints a JSON summary.

import { pump } from './tcp';

async function main(): Promise<void> {
  const [host, port, n, bytes] = process.argv.slice(2);
  if (!host || !port || !n || !bytes) {
    process.stderr.write('usage: pump-many HOST PORT CONNECTIONS BYTES\n');
    process.exit(2);
  }
  const results = await Promise.allSettled(Array.from({ length: Number(n) }, () => pump(Number(port), Number(bytes), host)));
  const failures = results
    .map((r, i) => (r.status === 'rejected' ? `#${i}: ${(r.reason as Error).message}` : r.value.intact ? null : `#${i}: echo differs (${r.value.received}/${r.value.sent} bytes)`))
    .filter((x): x is string => x !== null);
  process.stdout.write(JSON.stringify({ connections: results.length, intact: results.length - failures.length, failures: failures.slice(0, 10) }) + '\n');
  process.exit(failures.length === 0 ? 0 : 1);
}

void main();
