#!/usr/bin/env node
// What an L7 hop costs in Node.js before nodemesh adds anything: the smallest proxy built from the codecs the
// agent uses (Node's `http` server parsing the client, undici's Pool dispatching upstream, the answer piped
// back), on loopback, no TLS, no routing, no telemetry. One agent in the lab runs this twice per request
// (outbound on the source agent, inbound on the destination), plus HBONE, layers and telemetry; so this is the
// floor under the L7 issue's "vCPU per 1000 rps per agent" target.
//
//   node bench/micro/http-floor.js [--rate 1000] [--secs 10] [--conns 4] [--reps 3]
//
// The proxy runs in this process, pinned to CPU 1; the bench server (bench/server.js) and the open-loop load
// generator (bench/loadgen.js) run in their own processes on CPU 0. Per repetition: this process's CPU time
// (user + system) per 1000 requests, and the client's latency percentiles, direct and through the proxy.
'use strict';

const http = require('node:http');
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

async function main() {
  spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const app = spawn('taskset', ['-c', '0', process.execPath, path.join(__dirname, '..', 'server.js'), '--port', String(APP_PORT)], { stdio: 'ignore' });
  const stop = () => app.exitCode === null && app.kill('SIGTERM');
  process.on('exit', stop);
  await new Promise((r) => setTimeout(r, 500));
  const { server, pool } = await startProxy();
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
  console.log(JSON.stringify({ rate: RATE, conns: CONNS, secs: SECS, reps: rows, cpu_s_per_1k_req_median: cpus[Math.floor(cpus.length / 2)] }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
