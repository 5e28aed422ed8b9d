#!/usr/bin/env node
// What an L7 hop costs in Node.js before nodemesh adds anything: the smallest proxy built from the codecs the
// agent uses (Node's `http` server parsing the client, undici's Pool dispatching upstream, the answer piped
// back), on loopback, no TLS, no routing, no telemetry. One agent in the lab runs this twice per request
// (outbound on the source agent, inbound on the destination), plus HBONE, layers and telemetry; so this is the
// floor under the L7 issue's "vCPU per 1000 rps per agent" target.
//
//   node bench/micro/http-floor.js [--rate 1000] [--secs 10] [--conns 4] [--reps 3] [--codec libraries|raw]
//
// `--codec raw` replaces both libraries with Node's own llhttp binding driven directly (`_http_common`'s
// HTTPParser, what `http` itself runs on): no IncomingMessage, ServerResponse or undici objects, heads
// re-serialized by hand, bodies passed through. It is a measurement of what a leaner JavaScript codec could
// save, not something the agent should ship: that binding is internal to Node, and this hop checks nothing
// that `http` and undici check (it handles GETs and length-framed or close-delimited answers, which is what
// the bench sends).
//
// The proxy runs in this process, pinned to CPU 1; the bench server (bench/server.js) and the open-loop load
// generator (bench/loadgen.js) run in their own processes on CPU 0. Per repetition: this process's CPU time
// (user + system) per 1000 requests, and the client's latency percentiles, direct and through the proxy.
'use strict';

const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { Pool } = require('undici');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? Number(argv[i + 1]) : dflt;
};
const RATE = opt('rate', 1000);
const SECS = opt('secs', 10);
const CONNS = opt('conns', 4);
const REPS = opt('reps', 3);
const CODEC = argv.includes('--codec') ? argv[argv.indexOf('--codec') + 1] : 'libraries';
if (!['libraries', 'raw'].includes(CODEC)) throw new Error(`--codec ${CODEC}: expected libraries or raw`);
const APP_PORT = 18181;
const PROXY_PORT = 18182;

function run(cmd, args) {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', () => resolve(out));
  });
}

async function load(port) {
  const out = await run('taskset', ['-c', '0', process.execPath, path.join(__dirname, '..', 'loadgen.js'), '--target', `127.0.0.1:${port}`, '--rate', String(RATE), '--duration', String(SECS), '--warmup', '2', '--conns', String(CONNS)]);
  return JSON.parse(out.trim().split('\n').pop());
}

/** Node `http` in, undici out: a body-streaming pass-through, keep-alive on both sides. */
function startProxy() {
  const pool = new Pool(`http://127.0.0.1:${APP_PORT}`, { pipelining: 1, keepAliveTimeout: 4000 });
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers.connection;
    pool.dispatch(
      { path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
      {
        onConnect() {},
        onHeaders(status, raw, resume) {
          const h = [];
          for (let i = 0; i < raw.length; i += 2) {
            const k = raw[i].toString('latin1');
            if (k.toLowerCase() !== 'connection' && k.toLowerCase() !== 'keep-alive') h.push(k, raw[i + 1].toString('latin1'));
          }
          res.writeHead(status, h);
          res.on('drain', resume);
          return true;
        },
        onData(chunk) {
          return res.write(chunk);
        },
        onComplete() {
          res.end();
        },
        onError(err) {
          if (!res.headersSent) res.writeHead(502).end(String(err.message));
          else res.destroy(err);
        },
      },
    );
  });
  return new Promise((resolve) => server.listen(PROXY_PORT, '127.0.0.1', () => resolve({ server, pool })));
}

/** The same hop on Node's llhttp binding alone: one parser per connection each way, idle upstream sockets reused. */
function startRawProxy() {
  const { HTTPParser } = require('_http_common');
  const ON_HEADERS = HTTPParser.kOnHeaders | 0;
  const ON_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete | 0;
  const ON_BODY = HTTPParser.kOnBody | 0;
  const ON_COMPLETE = HTTPParser.kOnMessageComplete | 0;
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding']);
  const head = (first, raw, chunked) => {
    let s = first;
    for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
    return `${s}${chunked ? 'transfer-encoding: chunked\r\n' : ''}\r\n`;
  };
  const parser = (kind, sock, on) => {
    const p = new HTTPParser();
    p.initialize(kind, {});
    p[ON_HEADERS] = () => {};
    p[ON_HEADERS_COMPLETE] = (_maj, _min, raw, method, url, status, reason) => (on.head(raw, method, url, status, reason), 0);
    p[ON_BODY] = on.body;
    p[ON_COMPLETE] = on.complete;
    sock.setNoDelay(true);
    sock.on('data', (buf) => p.execute(buf) instanceof Error && sock.destroy());
    sock.on('error', () => {});
    return p;
  };
  const idle = [];
  const dial = () => {
    const up = { sock: net.connect(APP_PORT, '127.0.0.1'), client: null, chunked: false };
    parser(HTTPParser.RESPONSE, up.sock, {
      head: (raw, _m, _u, status, reason) => {
        up.chunked = !raw.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-length');
        up.client.write(head(`HTTP/1.1 ${status} ${reason}\r\n`, raw, up.chunked));
      },
      body: (b) => (up.chunked ? up.client.write(`${b.length.toString(16)}\r\n${b.toString('latin1')}\r\n`, 'latin1') : up.client.write(b)),
      complete: () => {
        if (up.chunked) up.client.write('0\r\n\r\n');
        up.client = null;
        idle.push(up);
      },
    });
    up.sock.on('close', () => idle.includes(up) && idle.splice(idle.indexOf(up), 1));
    return up;
  };
  const server = net.createServer((client) => {
    let up = null;
    parser(HTTPParser.REQUEST, client, {
      head: (raw, method, url) => {
        up = idle.pop() ?? dial();
        up.client = client;
        up.sock.write(head(`${http.METHODS[method]} ${url} HTTP/1.1\r\n`, raw, false));
      },
      body: (b) => up.sock.write(b),
      complete: () => {},
    });
  });
  const pool = { close: async () => idle.forEach((u) => u.sock.destroy()) };
  return new Promise((resolve) => server.listen(PROXY_PORT, '127.0.0.1', () => resolve({ server, pool })));
}

async function main() {
  spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const app = spawn('taskset', ['-c', '0', process.execPath, path.join(__dirname, '..', 'server.js'), '--port', String(APP_PORT)], { stdio: 'ignore' });
  const stop = () => app.exitCode === null && app.kill('SIGTERM');
  process.on('exit', stop);
  await new Promise((r) => setTimeout(r, 500));
  const { server, pool } = await (CODEC === 'raw' ? startRawProxy() : startProxy());
  const rows = [];
  try {
    for (let rep = 1; rep <= REPS; rep++) {
      const direct = await load(APP_PORT);
      const c0 = process.cpuUsage();
      const proxied = await load(PROXY_PORT);
      const c = process.cpuUsage(c0);
      const cpuPer1k = ((c.user + c.system) / 1e6 / proxied.sent_total) * 1000;
      const row = { rep, rate_rps: proxied.rate_rps, errors: proxied.errors, cpu_s_per_1k_req: Math.round(cpuPer1k * 1000) / 1000, direct_p50_ms: direct.latency_ms.p50, direct_p99_ms: direct.latency_ms.p99, proxied_p50_ms: proxied.latency_ms.p50, proxied_p99_ms: proxied.latency_ms.p99 };
      rows.push(row);
      console.error(JSON.stringify(row));
    }
  } finally {
    server.close();
    await pool.close();
    stop();
  }
  const cpus = rows.map((r) => r.cpu_s_per_1k_req).sort((a, b) => a - b);
  console.log(JSON.stringify({ codec: CODEC, rate: RATE, conns: CONNS, secs: SECS, reps: rows, cpu_s_per_1k_req_median: cpus[Math.floor(cpus.length / 2)] }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
