// `nodemesh sample ...`: the lab's sample workloads (echo, http servers) and clients (client, pump).

import { Command, InvalidArgumentError } from 'commander';
import { runClient } from '../sample/client';
import { startEchoServer } from '../sample/echo-server';
import { startSampleHttpServer } from '../sample/http-server';
import { parseHostPort, pump } from '../sample/pump';

function int(what: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer in ${min}..${max}`);
    return n;
  };
}

/** Servers log one JSON line when listening, and exit cleanly on SIGTERM/SIGINT (lab down sends them). */
function serveUntilSignal(server: { close(cb?: () => void): unknown }, info: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', pod: process.env.POD_NAME, ...info })}\n`);
  const stop = (): void => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export function registerSampleCommand(program: Command): void {
  // Without positional options the root program consumes its own options anywhere on the line, so
  // `sample http --version v2` would print the package version instead; root options go first anyway.
  program.enablePositionalOptions();
  const sample = program.command('sample').description('sample workloads and clients for the lab');

  sample
    .command('echo')
    .description('TCP echo server (echoes until the peer half-closes, then closes its side)')
    .requiredOption('--port <port>', 'port to listen on', int('--port', 1, 65535))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .action(async (o: { port: number; host: string }) => {
      const server = await startEchoServer(o);
      serveUntilSignal(server, { kind: 'echo', host: o.host, port: o.port });
    });

  sample
    .command('http')
    .description('HTTP server answering JSON {name, version, pod, path, method, headers, peer}; GET /bytes/N sends N bytes')
    .requiredOption('--port <port>', 'port to listen on', int('--port', 1, 65535))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .option('--name <name>', 'service name to report', 'http')
    .option('--version <version>', 'version to report', 'v1')
    .action(async (o: { port: number; host: string; name: string; version: string }) => {
      const server = await startSampleHttpServer(o);
      serveUntilSignal(server, { kind: 'http', host: o.host, port: o.port, name: o.name, version: o.version });
    });

  sample
    .command('client')
    .description('sequential HTTP GETs; prints one JSON line per answer; exit 1 if any failed')
    .requiredOption('--url <url>', 'URL to GET')
    .option('--count <n>', 'number of requests', int('--count', 1, 1_000_000), 1)
    .option('--timeout <ms>', 'per-request timeout in ms', int('--timeout', 1, 3_600_000), 5000)
    .option('-H, --header <k:v...>', 'extra request header(s)')
    .option('--new-connections', 'a new connection per request (default: one keep-alive connection)', false)
    .action(async (o: { url: string; count: number; timeout: number; header?: string[]; newConnections: boolean }) => {
      const headers: Record<string, string> = {};
      for (const h of o.header ?? []) {
        const i = h.indexOf(':');
        if (i > 0) headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
      }
      const failures = await runClient({ url: o.url, count: o.count, timeoutMs: o.timeout, headers, newConnections: o.newConnections }, (l) =>
        process.stdout.write(`${l}\n`),
      );
      process.exitCode = failures > 0 ? 1 : 0;
    });

  sample
    .command('pump')
    .description('send N random bytes to an echo server, half-close, verify the echo (sha256); prints JSON')
    .requiredOption('--connect <host:port>', 'echo server address', (v: string) => {
      try {
        return parseHostPort(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    })
    .option('--bytes <n>', 'bytes to send', int('--bytes', 0, Number.MAX_SAFE_INTEGER), 1 << 20)
    .option('--timeout <ms>', 'overall timeout in ms', int('--timeout', 1, 3_600_000), 30_000)
    .action(async (o: { connect: { host: string; port: number }; bytes: number; timeout: number }) => {
      const r = await pump({ ...o.connect, bytes: o.bytes, timeoutMs: o.timeout });
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exitCode = r.ok ? 0 : 1;
    });
}
