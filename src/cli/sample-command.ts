// `nodemesh sample ...`: the lab's sample workloads (echo, http, grpc servers) and clients (client, grpc-client, ws-client, pump).

import { Command, InvalidArgumentError, Option } from 'commander';
import { SampleError } from '../sample/errors';
import { parseHostPort, pump } from '../sample/pump';

// Each subcommand imports its module when it runs: `sample client` runs often in tests and should
// not pay for loading grpc-js (~170 ms) or the WebSocket library.

function int(what: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer in ${min}..${max}`);
    return n;
  };
}

/** Collects repeatable `key: value` options (`-H 'x-canary: true' -H ...`) into one record. */
function pairs(what: string): (v: string, prev: Record<string, string> | undefined) => Record<string, string> {
  return (v, prev) => {
    const i = v.indexOf(':');
    const key = v.slice(0, i).trim();
    if (i <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) throw new InvalidArgumentError(`${what} "${v}" is not "name: value" (a header name, a colon, the value)`);
    return { ...prev, [key.toLowerCase()]: v.slice(i + 1).trim() };
  };
}

/** Servers log one JSON line when listening, and exit cleanly on SIGTERM/SIGINT (lab down sends them). */
function serveUntilSignal(close: () => Promise<void>, info: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', pod: process.env.POD_NAME, ...info })}\n`);
  const stop = (): void => {
    void close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1500).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function registerServers(sample: Command): void {
  sample
    .command('echo')
    .description('TCP echo server (echoes until the peer half-closes, then closes its side)')
    .requiredOption('--port <port>', 'port to listen on', int('--port', 1, 65535))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .action(async (o: { port: number; host: string }) => {
      const { startEchoServer } = await import('../sample/echo-server');
      const server = await startEchoServer(o);
      serveUntilSignal(() => new Promise((r) => server.close(() => r())), { kind: 'echo', host: o.host, port: o.port });
    });

  sample
    .command('http')
    .description('HTTP/1.1 and h2c server answering JSON {name, version, pod, path, method, headers, peer, status, httpVersion, requestBody?, fail?}')
    .requiredOption('--port <port>', 'port to listen on', int('--port', 1, 65535))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .option('--name <name>', 'service name to report', 'http')
    .option('--version <version>', 'version to report', 'v1')
    .option('--pod <name>', 'pod name to report (default: $POD_NAME, else the host name)')
    .addHelpText(
      'after',
      `
Every answer carries x-served-by: POD. Query controls (others are ignored; a bad value answers 400):
  ?delay=MS           answer MS ms after the request body ended (0..60000)
  ?status=CODE        answer with CODE (200..599)
  ?fail=N             with header x-fail-key: K, the first N requests carrying K answer 500
  ?fail_status=CODE   ... or CODE instead of 500 (counted per server process; 10000 keys, LRU)
  ?fail_delay=MS      ... and answer those failures after MS ms instead of ?delay (0..60000)
  ?fail_reset=1       ... or reset the connection (HTTP/2: the stream) instead of answering
  ?chunked=1          send the body in several chunks, without content-length
  ?trailers=1         send x-body-sha256 (of the body) as a trailer
Paths: GET /bytes/N sends N bytes; /ws upgrades to a WebSocket echo.`,
    )
    .action(async (o: { port: number; host: string; name: string; version: string; pod?: string }) => {
      const { startSampleHttpServer } = await import('../sample/http-server');
      const server = await startSampleHttpServer(o);
      serveUntilSignal(() => server.close(), { kind: 'http', host: o.host, port: o.port, name: o.name, version: o.version });
    });

  sample
    .command('grpc')
    .description('gRPC Echo server (protos/nodemesh/sample/echo.proto): unary Echo, ServerStream and Bidi; answers say pod and version')
    .requiredOption('--port <port>', 'port to listen on', int('--port', 1, 65535))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .option('--name <name>', 'service name to report', 'grpc')
    .option('--version <version>', 'version to report', 'v1')
    .option('--pod <name>', 'pod name to report (default: $POD_NAME, else the host name)')
    .action(async (o: { port: number; host: string; name: string; version: string; pod?: string }) => {
      const { startGrpcEchoServer } = await import('../sample/grpc-server');
      const server = await startGrpcEchoServer(o);
      serveUntilSignal(() => server.close(), { kind: 'grpc', host: o.host, port: server.port, name: o.name, version: o.version });
    });
}

interface ClientFlags {
  url: string;
  count?: number;
  duration?: number;
  concurrency: number;
  timeout: number;
  header?: Record<string, string>;
  method?: string;
  data?: string;
  dataBytes?: number;
  http2?: boolean;
  newConnections?: boolean;
  summary?: boolean;
  quiet?: boolean;
}

interface GrpcClientFlags {
  target: string;
  call: 'unary' | 'stream' | 'bidi';
  count: number;
  deadline?: number;
  metadata?: Record<string, string>;
  message: string;
  status: string;
  statusMessage: string;
  delay: number;
  responses: number;
  interval: number;
  summary?: boolean;
  quiet?: boolean;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

function registerClients(sample: Command): void {
  sample
    .command('client')
    .description('HTTP requests; one JSON line per answer {i, ok, status, ms, bytes, servedBy, body, trailers, error}; exit 1 if any failed')
    .requiredOption('--url <url>', 'http:// URL to request')
    .option('--count <n>', 'number of requests (default 1, or unlimited with --duration)', int('--count', 1, 100_000_000))
    .option('--duration <s>', 'keep sending for this many seconds', (v: string) => {
      const n = Number(v);
      if (!(n > 0 && n <= 86_400)) throw new InvalidArgumentError('--duration must be seconds in (0, 86400]');
      return n;
    })
    .option('--concurrency <n>', 'requests in flight at once', int('--concurrency', 1, 1000), 1)
    .option('--timeout <ms>', 'per-request idle timeout in ms', int('--timeout', 1, 3_600_000), 5000)
    .option('-H, --header <name: value...>', 'request header, repeatable', pairs('--header'))
    .option('-X, --method <method>', 'request method (default GET, or POST with a body)', (v: string) => {
      if (!/^[A-Za-z]+$/.test(v)) throw new InvalidArgumentError('--method must be a method name such as GET or POST');
      return v.toUpperCase();
    })
    .option('-d, --data <text>', 'request body')
    .addOption(new Option('--data-bytes <n>', "request body of N bytes of 'x', streamed").argParser(int('--data-bytes', 0, Number.MAX_SAFE_INTEGER)).conflicts('data'))
    .option('--http2', 'HTTP/2 over cleartext with prior knowledge (h2c, as gRPC clients speak it)')
    .option('--new-connections', 'a new connection per request (default: keep-alive connections, one per concurrent request)')
    .option('--summary', 'print a last line {"summary": {total, ok, failed, byStatus, errors, byPod, byVersion, latencyMs, seconds, rps}}')
    .option('-q, --quiet', 'no per-request lines')
    .action(async (o: ClientFlags) => {
      const withBody = o.data !== undefined || o.dataBytes !== undefined;
      const { runClient } = await import('../sample/client');
      const s = await runClient(
        {
          url: o.url,
          count: o.count,
          durationMs: o.duration !== undefined ? o.duration * 1000 : undefined,
          concurrency: o.concurrency,
          timeoutMs: o.timeout,
          headers: o.header,
          method: o.method ?? (withBody ? 'POST' : 'GET'),
          body: o.data !== undefined ? Buffer.from(o.data) : undefined,
          bodyBytes: o.dataBytes,
          http2: o.http2,
          newConnections: o.newConnections,
          lines: !o.quiet,
        },
        print,
      );
      if (o.summary) print(JSON.stringify({ summary: s }));
      process.exitCode = s.failed > 0 ? 1 : 0;
    });

  sample
    .command('grpc-client')
    .description('calls the sample Echo service; one JSON line per call {i, call, ok, code, status, details, pod, version, responses, ms}; exit 1 if any call was not OK')
    .requiredOption('--target <host:port>', 'server address (any grpc-js target)')
    .option('--call <kind>', 'unary, stream (server streaming) or bidi', (v: string) => {
      if (v !== 'unary' && v !== 'stream' && v !== 'bidi') throw new InvalidArgumentError('--call must be unary, stream or bidi');
      return v;
    }, 'unary')
    .option('--count <n>', 'number of calls', int('--count', 1, 10_000_000), 1)
    .option('--deadline <ms>', 'per-call deadline in ms', int('--deadline', 1, 3_600_000))
    .option('-m, --metadata <name: value...>', 'request metadata, repeatable', pairs('--metadata'))
    .option('--message <text>', 'message to echo', 'hello')
    .option('--status <code>', 'ask the server to end each call with this grpc-status (0..16 or a name such as UNAVAILABLE)', 'OK')
    .option('--status-message <text>', 'grpc-message to send with --status', '')
    .option('--delay <ms>', 'ask the server to wait this long before each answer', int('--delay', 0, 60_000), 0)
    .option('--responses <n>', 'stream: answers to ask for; bidi: requests to send', int('--responses', 1, 10_000), 3)
    .option('--interval <ms>', 'stream: ask for this wait between answers', int('--interval', 0, 60_000), 0)
    .option('--summary', 'print a last line {"summary": {total, ok, failed, byCode, byPod, byVersion, latencyMs, seconds, rps}}')
    .option('-q, --quiet', 'no per-call lines')
    .action(async (o: GrpcClientFlags) => {
      const { grpcStatusCode, runGrpcClient } = await import('../sample/grpc-client');
      const status = grpcStatusCode(o.status);
      if (status === undefined) throw new SampleError('NM_SAMPLE_BAD_ARG', `--status "${o.status}" is not a grpc-status`, 'give 0..16 or a name such as UNAVAILABLE');
      const s = await runGrpcClient(
        {
          target: o.target,
          call: o.call,
          count: o.count,
          deadlineMs: o.deadline,
          metadata: o.metadata,
          request: { message: o.message, status, status_message: o.statusMessage, delay_ms: o.delay, interval_ms: o.interval },
          responses: o.responses,
          lines: !o.quiet,
        },
        print,
      );
      if (o.summary) print(JSON.stringify({ summary: s }));
      process.exitCode = s.failed > 0 ? 1 : 0;
    });

  sample
    .command('ws-client')
    .description('WebSocket echo check against the http sample\'s /ws; prints {ok, url, servedBy, sent, echoed, ms, closeCode?, error?}; exit 1 unless every echo came back')
    .requiredOption('--url <url>', 'ws:// URL (the http sample serves /ws)')
    .option('--count <n>', 'messages to send, one at a time', int('--count', 0, 1_000_000), 3)
    .option('--message <text>', 'text of each message (numbered)', 'hello')
    .option('--binary-bytes <n>', 'send binary messages of N random bytes instead', int('--binary-bytes', 1, 16 * 1024 * 1024))
    .option('-H, --header <name: value...>', 'handshake header, repeatable', pairs('--header'))
    .option('--timeout <ms>', 'overall timeout in ms', int('--timeout', 1, 3_600_000), 10_000)
    .action(async (o: { url: string; count: number; message: string; binaryBytes?: number; header?: Record<string, string>; timeout: number }) => {
      if (!/^wss?:\/\//.test(o.url)) throw new SampleError('NM_SAMPLE_BAD_ARG', `--url ${o.url} is not a ws:// URL`, 'give ws://HOST:PORT/ws');
      const { runWsClient } = await import('../sample/websocket-client');
      const r = await runWsClient({ url: o.url, count: o.count, message: o.message, binaryBytes: o.binaryBytes, headers: o.header, timeoutMs: o.timeout });
      print(JSON.stringify(r));
      process.exitCode = r.ok ? 0 : 1;
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
      print(JSON.stringify(r));
      process.exitCode = r.ok ? 0 : 1;
    });
}

export function registerSampleCommand(program: Command): void {
  // Without positional options the root program consumes its own options anywhere on the line, so
  // `sample http --version v2` would print the package version instead; root options go first anyway.
  program.enablePositionalOptions();
  const sample = program.command('sample').description('sample workloads and clients for the lab');
  registerServers(sample);
  registerClients(sample);
}
