#!/usr/bin/env node
// Open-loop HTTP/1.1 load generator. Requests are scheduled at fixed intended times (rate R, evenly
// spaced) independent of responses; latency is measured from the INTENDED send time, so a slow
// response that delays later requests shows up in their latency (coordinated omission corrected,
// as in wrk2). Prints one JSON object on stdout. A request succeeds when it is answered 2xx; any other
// status, a reset or a timeout is a failure, and latency percentiles are over successes
// (`latency_all_ms`: over every answer, whatever its status).
//
//   node bench/loadgen.js --target IP:PORT[,IP:PORT...] --rate 1000 --conns 4 --duration 10 [--warmup 2]
//                         [--new-conn] [--max-inflight 512] [--path /] [--drain 2]
//
// Several targets: the client spreads requests itself, request i to target i mod n (round robin per
// request, whatever the targets' speed), each target with its own connections (--conns split evenly,
// rounded up) and its own FIFO; `per_target` counts what each one answered.
//
// Keep-alive mode: N connections are opened first; a due request goes to the least recently used
// idle connection, or waits in a FIFO until one is idle (no pipelining). New-connection mode
// (--new-conn): each request opens its own TCP connection, sends `Connection: close`, and the
// server closes after the response. Requests due during --warmup are sent but not recorded.
// Hard bounds: scheduling stops after warmup + duration; outstanding requests get --drain seconds,
// then count as errors (timeouts); the process exits on its own.
'use strict';

const net = require('node:net');
const { performance } = require('node:perf_hooks');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const flag = (name) => process.argv.includes(`--${name}`);

const target = arg('target');
if (!target) {
  console.error('loadgen: --target IP:PORT is required');
  process.exit(2);
}
const targets = target.split(',').map((t) => {
  const [host, portStr] = t.split(':');
  const port = Number(portStr);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`loadgen: --target takes IP:PORT[,IP:PORT...], not "${target}"`);
    process.exit(2);
  }
  return { host, port, name: t };
});
const rate = Number(arg('rate', '1000'));
const conns = Number(arg('conns', '4'));
const durationS = Number(arg('duration', '10'));
const warmupS = Number(arg('warmup', '2'));
const drainS = Number(arg('drain', '2'));
const newConn = flag('new-conn');
const maxInflight = Number(arg('max-inflight', '512'));
const reqPath = arg('path', '/');

const CONNS_PER_TARGET = Math.max(1, Math.ceil(conns / targets.length));
const CRLFCRLF = Buffer.from('\r\n\r\n');

const intervalMs = 1000 / rate;
const totalReqs = Math.round(rate * (warmupS + durationS));
const warmupReqs = Math.round(rate * warmupS);

const lat = new Float64Array(Math.max(0, totalReqs - warmupReqs)); // ms from intended send, measured successes
const svc = new Float64Array(lat.length); // ms from actual write (service time, for insight)
const lag = new Float64Array(lat.length); // ms the write happened after the intended time
const latAll = new Float64Array(lat.length); // ms from intended send, every measured answer (any status)
let nLat = 0;
let nAll = 0;
let errors = 0;
let non2xx = 0;
const statusCounts = {};
let connectErrors = 0;
let completedMeasured = 0;
let firstMeasuredAt = 0;
let lastMeasuredAt = 0;

/** One target: its request bytes, idle connections (LRU first), due requests waiting, live connections. */
const pools = targets.map((t) => ({
  ...t,
  req: Buffer.from(`GET ${reqPath} HTTP/1.1\r\nHost: ${t.name}\r\nUser-Agent: nodemesh-bench\r\n\r\n`),
  reqClose: Buffer.from(`GET ${reqPath} HTTP/1.1\r\nHost: ${t.name}\r\nUser-Agent: nodemesh-bench\r\nConnection: close\r\n\r\n`),
  idle: [],
  queue: [],
  head: 0, // queue read index (avoids Array.shift on long queues)
  live: new Set(),
  ok: 0,
  answered: 0,
}));

/** Incremental response reader: status line, Content-Length, body. Calls onDone(status) per response. */
class ResponseReader {
  constructor(onDone) {
    this.onDone = onDone;
    this.buf = null;
    this.bodyLeft = -1; // -1: reading the head
    this.status = 0;
  }
  push(chunk) {
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = null;
    let off = 0;
    while (off < buf.length) {
      if (this.bodyLeft < 0) {
        const end = buf.indexOf(CRLFCRLF, off);
        if (end < 0) {
          this.buf = Buffer.from(buf.subarray(off));
          return;
        }
        const head = buf.toString('latin1', off, end);
        this.status = parseInt(head.slice(9, 12), 10);
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        this.bodyLeft = m ? parseInt(m[1], 10) : 0;
        off = end + 4;
      }
      const n = Math.min(this.bodyLeft, buf.length - off);
      this.bodyLeft -= n;
      off += n;
      if (this.bodyLeft === 0) {
        this.bodyLeft = -1;
        this.onDone(this.status);
      }
    }
  }
}

function record(intended, sentAt, now, status, pool) {
  if (intended.idx < warmupReqs) return;
  completedMeasured++;
  const ok = status >= 200 && status < 300;
  statusCounts[status] = (statusCounts[status] || 0) + 1;
  pool.answered++;
  latAll[nAll++] = now - intended.t;
  if (!ok) {
    non2xx++;
    return;
  }
  pool.ok++;
  if (nLat === 0) firstMeasuredAt = now;
  lastMeasuredAt = now;
  lat[nLat] = now - intended.t;
  svc[nLat] = now - sentAt;
  lag[nLat] = sentAt - intended.t;
  nLat++;
}

// ---- keep-alive mode ------------------------------------------------------------------------

let stopping = false;

function openConn(pool) {
  return new Promise((resolve) => {
    const c = { sock: null, cur: null, sentAt: 0, ready: false, pool };
    const sock = net.connect({ host: pool.host, port: pool.port, noDelay: true });
    c.sock = sock;
    c.reader = new ResponseReader((status) => {
      const now = performance.now();
      const r = c.cur;
      c.cur = null;
      if (r) record(r, c.sentAt, now, status, pool);
      next(c);
    });
    sock.on('connect', () => {
      c.ready = true;
      pool.live.add(c);
      resolve(c);
    });
    sock.on('data', (d) => c.reader.push(d));
    const fail = () => {
      if (!c.ready) {
        connectErrors++;
        resolve(null);
        return;
      }
      if (!pool.live.delete(c)) return;
      const i = pool.idle.indexOf(c);
      if (i >= 0) pool.idle.splice(i, 1);
      if (c.cur) {
        if (c.cur.idx >= warmupReqs) errors++;
        c.cur = null;
      }
      if (!stopping) {
        setTimeout(() => {
          openConn(pool).then((n) => n && next(n));
        }, 10);
      }
    };
    sock.on('error', fail);
    sock.on('close', fail);
  });
}

function next(c) {
  const p = c.pool;
  if (p.head < p.queue.length) {
    const r = p.queue[p.head];
    p.queue[p.head++] = undefined;
    if (p.head > 4096 && p.head * 2 > p.queue.length) {
      p.queue.splice(0, p.head);
      p.head = 0;
    }
    send(c, r);
  } else {
    p.idle.push(c);
  }
}

function send(c, r) {
  c.cur = r;
  c.sentAt = performance.now();
  c.sock.write(c.pool.req);
}

function dispatchKeepAlive(r) {
  const p = pools[r.idx % pools.length];
  const c = p.idle.shift();
  if (c) send(c, r);
  else p.queue.push(r);
}

// ---- new-connection mode ----------------------------------------------------------------------

let inflight = 0;
const ncQueue = [];
let ncHead = 0;

function dispatchNewConn(r) {
  if (inflight >= maxInflight) {
    ncQueue.push(r);
    return;
  }
  inflight++;
  let done = false;
  const pool = pools[r.idx % pools.length];
  const sock = net.connect({ host: pool.host, port: pool.port, noDelay: true });
  const finish = (ok, status) => {
    if (done) return;
    done = true;
    inflight--;
    if (ok) record(r, r.sentAt, performance.now(), status, pool);
    else if (r.idx >= warmupReqs) errors++;
    if (ncHead < ncQueue.length) {
      const q = ncQueue[ncHead];
      ncQueue[ncHead++] = undefined;
      dispatchNewConn(q);
    }
  };
  const reader = new ResponseReader((status) => {
    finish(true, status);
    sock.destroy();
  });
  sock.on('connect', () => {
    r.sentAt = performance.now();
    sock.write(pool.reqClose);
  });
  sock.on('data', (d) => reader.push(d));
  sock.on('error', () => finish(false, 0));
  sock.on('close', () => finish(false, 0));
}

// ---- schedule ---------------------------------------------------------------------------------

function pct(sorted, n, p) {
  if (n === 0) return null;
  const i = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return sorted[i];
}

function summary(arr, n) {
  const s = arr.subarray(0, n).sort();
  const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  return {
    p50: r3(pct(s, n, 50)),
    p90: r3(pct(s, n, 90)),
    p99: r3(pct(s, n, 99)),
    p999: r3(pct(s, n, 99.9)),
    max: r3(n ? s[n - 1] : null),
    mean: r3(n ? sum / n : null),
  };
}

function finish(t0, sentCount) {
  const measuredSpanS = durationS;
  const l = summary(lat, nLat);
  const scheduled = totalReqs - warmupReqs;
  const out = {
    target,
    mode: newConn ? 'new-conn' : 'keep-alive',
    rate_target: rate,
    conns: newConn ? null : CONNS_PER_TARGET * pools.length,
    duration_s: durationS,
    warmup_s: warmupS,
    scheduled,
    sent_total: sentCount,
    completed: completedMeasured,
    ok: nLat,
    // Everything scheduled in the measured window that did not end in a 2xx within the bounds.
    errors: scheduled - nLat,
    success_rate: scheduled > 0 ? Math.round((nLat / scheduled) * 1e5) / 1e5 : null,
    socket_errors: errors,
    unfinished: Math.max(0, scheduled - completedMeasured - errors),
    non_2xx: non2xx,
    status_counts: statusCounts,
    connect_errors: connectErrors,
    rate_rps: Math.round((nLat / measuredSpanS) * 10) / 10,
    completion_span_s: nLat ? Math.round((lastMeasuredAt - firstMeasuredAt) / 10) / 100 : 0,
    latency_ms: l,
    latency_all_ms: summary(latAll, nAll),
    service_ms: summary(svc, nLat),
    send_lag_ms: summary(lag, nLat),
    per_target: pools.length > 1 ? Object.fromEntries(pools.map((p) => [p.name, { ok: p.ok, answered: p.answered }])) : undefined,
    wall_s: Math.round((performance.now() - t0) / 10) / 100,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

async function main() {
  if (!newConn) {
    for (const p of pools) {
      const opened = await Promise.all(Array.from({ length: CONNS_PER_TARGET }, () => openConn(p)));
      for (const c of opened) if (c) p.idle.push(c);
      if (p.idle.length === 0) {
        process.stdout.write(JSON.stringify({ target, fatal: `no connection to ${p.name} could be opened`, connect_errors: connectErrors }) + '\n');
        process.exit(1);
      }
    }
  }
  const dispatch = newConn ? dispatchNewConn : dispatchKeepAlive;
  const t0 = performance.now() + 5;
  let i = 0;
  let nextAt = t0;
  const tick = () => {
    const now = performance.now();
    while (i < totalReqs && nextAt <= now) {
      dispatch({ idx: i, t: nextAt, sentAt: 0 });
      i++;
      nextAt = t0 + i * intervalMs;
    }
    if (i < totalReqs) {
      setTimeout(tick, Math.max(0, nextAt - performance.now()));
      return;
    }
    // Everything scheduled: give outstanding requests the drain period, then report.
    const deadline = performance.now() + drainS * 1000;
    const wait = () => {
      if (completedMeasured + errors >= totalReqs - warmupReqs || performance.now() >= deadline) {
        stopping = true;
        for (const p of pools) for (const c of p.live) c.sock.destroy();
        finish(t0, i);
      } else setTimeout(wait, 5);
    };
    wait();
  };
  setTimeout(tick, 5);
  // Belt and braces: never outlive the planned run by more than a few seconds.
  setTimeout(() => finish(t0, i), (warmupS + durationS + drainS + 5) * 1000).unref();
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ target, fatal: String(e && e.message) }) + '\n');
  process.exit(1);
});
