#!/usr/bin/env node
// What each layer of a two-hop Node.js relay costs, without the mesh around it: plain TCP, TLS per
// connection, HTTP/2 CONNECT streams over one pooled TLS session (HBONE's framing) through Node's `http2`,
// and the same framing done by a minimal framer in JS (`h2lite`). Two relay processes on CPU 1, load and server on CPU 0, loopback only. Answers "how much of
// the agent's CPU is Node's HTTP/2 layer, and what is the floor of a Node relay" (bench/README.md).
//
//   node bench/micro/relay-layers.js [--reps 3] [--rate 1000] [--secs 10] [--bulk-mib 1024] [--only direct,tcp,tls,h2,h2lite]
//
// `direct` runs the same load with no relay in between: each relay's added latency is its latency minus
// direct's in the same repetition (median over repetitions).
//
// rr: 100-byte requests, 1 KiB responses, open loop at --rate over 4 keep-alive connections; latency from
// the intended send time. bulk: one stream of --bulk-mib MiB one way. CPU from each relay's own
// process.cpuUsage() over the measured window.
'use strict';

const { fork, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const http2 = require('node:http2');
const net = require('node:net');
const tls = require('node:tls');

// ---- relay process: `relay-layers.js relay MODE in|out LISTEN_PORT TARGET_PORT` ---------------------------

function pipeBoth(a, b) {
  const one = (src, dst) => {
    src.on('data', (chunk) => {
      if (!dst.write(chunk)) src.pause();
    });
    dst.on('drain', () => src.resume());
    src.on('end', () => dst.end());
    src.on('error', () => dst.destroy());
  };
  one(a, b);
  one(b, a);
}

// ---- h2lite: a minimal HTTP/2 CONNECT framer in JS, both ends ours (no HPACK beyond literal fields, no
// priorities), to bound what replacing Node's `http2` on the HBONE path could give. Not a general HTTP/2.

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, WINDOW_UPDATE: 8 };
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const WINDOW = 16 << 20;
const MAX_FRAME = 16384;

function frameHeader(len, type, flags, id) {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return h;
}

/** Literal header fields without indexing, no Huffman: enough for our own decoder. */
function literalBlock(fields) {
  const parts = [];
  for (const [k, v] of fields) {
    parts.push(Buffer.from([0x00, k.length]), Buffer.from(k), Buffer.from([v.length]), Buffer.from(v));
  }
  return Buffer.concat(parts);
}

class LiteSession {
  constructor(tlsSocket, isServer, onStream) {
    this.sock = tlsSocket;
    this.streams = new Map();
    this.nextId = 1;
    this.onStream = onStream;
    this.buf = Buffer.alloc(0);
    this.dataLeft = 0;
    this.dataId = 0;
    this.dataFlags = 0;
    this.prefaceLeft = isServer ? PREFACE.length : 0;
    this.sendWindow = 65535;
    this.recvConsumed = 0;
    this.blocked = [];
    if (!isServer) tlsSocket.write(PREFACE);
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(WINDOW, 2);
    tlsSocket.cork();
    tlsSocket.write(frameHeader(6, FRAME.SETTINGS, 0, 0));
    tlsSocket.write(settings);
    this.windowUpdate(0, WINDOW - 65535);
    tlsSocket.uncork();
    tlsSocket.on('data', (d) => this.read(d));
    tlsSocket.on('drain', () => this.streams.forEach((st) => st.sock.resume()));
  }
  windowUpdate(id, n) {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n, 0);
    this.sock.write(frameHeader(4, FRAME.WINDOW_UPDATE, 0, id));
    this.sock.write(b);
  }
  read(d) {
    if (this.prefaceLeft) {
      const n = Math.min(this.prefaceLeft, d.length);
      this.prefaceLeft -= n;
      d = d.subarray(n);
    }
    let off = 0;
    while (off < d.length) {
      if (this.dataLeft > 0) {
        // inside a DATA payload: forward what this read holds of it, no reassembly
        const n = Math.min(this.dataLeft, d.length - off);
        this.data(this.dataId, d.subarray(off, off + n));
        off += n;
        this.dataLeft -= n;
        if (this.dataLeft === 0 && this.dataFlags & 1) this.endStream(this.dataId);
        continue;
      }
      // a frame header (and a non-DATA payload) may straddle reads: those few bytes are reassembled
      let b = d.subarray(off);
      if (this.buf.length) b = Buffer.concat([this.buf, b]);
      if (b.length < 9) {
        this.buf = Buffer.from(b);
        return;
      }
      const len = b.readUIntBE(0, 3);
      const type = b[3];
      const flags = b[4];
      const id = b.readUInt32BE(5) & 0x7fffffff;
      const consumed = b.length - (d.length - off); // bytes of b that came from this.buf
      if (type === FRAME.DATA) {
        this.buf = Buffer.alloc(0);
        off += 9 - consumed;
        this.dataId = id;
        this.dataFlags = flags;
        this.dataLeft = len;
        if (len === 0 && flags & 1) this.endStream(id);
        continue;
      }
      if (b.length < 9 + len) {
        this.buf = Buffer.from(b);
        return;
      }
      this.buf = Buffer.alloc(0);
      off += 9 + len - consumed;
      this.frame(type, flags, id, b.subarray(9, 9 + len));
    }
  }
  data(id, payload) {
    const st = this.streams.get(id);
    if (st) st.sock.write(payload);
    this.recvConsumed += payload.length;
    if (this.recvConsumed > WINDOW / 2) {
      this.windowUpdate(0, this.recvConsumed);
      this.recvConsumed = 0;
    }
    if (!st) return;
    st.recvConsumed += payload.length;
    if (st.recvConsumed > WINDOW / 2) {
      this.windowUpdate(id, st.recvConsumed);
      st.recvConsumed = 0;
    }
  }
  endStream(id) {
    const st = this.streams.get(id);
    if (st) st.sock.end();
  }
  frame(type, flags, id, payload) {
    if (type === FRAME.HEADERS) {
      if (!this.streams.has(id) && this.onStream) this.onStream(id);
    } else if (type === FRAME.SETTINGS) {
      if (!(flags & 1)) this.sock.write(frameHeader(0, FRAME.SETTINGS, 1, 0));
    } else if (type === FRAME.WINDOW_UPDATE) {
      const inc = payload.readUInt32BE(0) & 0x7fffffff;
      if (id === 0) this.sendWindow += inc;
      else if (this.streams.has(id)) this.streams.get(id).sendWindow += inc;
      this.streams.forEach((st) => st.sock.resume());
    }
  }
  /** Binds a TCP socket to stream `id`: its reads become DATA frames, the stream's DATA is written to it. */
  attach(id, sock, headers) {
    const st = { sock, sendWindow: WINDOW, recvConsumed: 0 };
    this.streams.set(id, st);
    if (headers) {
      const block = literalBlock(headers);
      this.sock.write(Buffer.concat([frameHeader(block.length, FRAME.HEADERS, 4, id), block]));
    }
    sock.on('data', (chunk) => {
      this.sock.cork();
      for (let o = 0; o < chunk.length; o += MAX_FRAME) {
        const part = chunk.subarray(o, Math.min(chunk.length, o + MAX_FRAME));
        this.sock.write(frameHeader(part.length, FRAME.DATA, 0, id));
        this.sock.write(part);
      }
      this.sock.uncork();
      this.sendWindow -= chunk.length;
      st.sendWindow -= chunk.length;
      if (this.sock.writableNeedDrain || this.sendWindow < MAX_FRAME * 4 || st.sendWindow < MAX_FRAME * 4) sock.pause();
    });
    sock.on('end', () => this.sock.write(frameHeader(0, FRAME.DATA, 1, id)));
    sock.on('close', () => this.streams.delete(id));
  }
  open(sock, authority) {
    const id = this.nextId;
    this.nextId += 2;
    this.attach(id, sock, [[':method', 'CONNECT'], [':authority', authority]]);
  }
}

function runRelay([mode, side, listenPort, targetPort], creds) {
  const target = { host: '127.0.0.1', port: Number(targetPort) };
  const tlsClient = () => {
    const s = tls.connect({ ...target, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    s.setNoDelay(true);
    return s;
  };
  const ready = () => process.send('ready');
  const windows = { initialWindowSize: 4 << 20 };
  if (side === 'out') {
    const lite = mode === 'h2lite' ? new LiteSession(tlsClient(), false, null) : null;
    const session = mode === 'h2' ? http2.connect(`https://127.0.0.1:${targetPort}`, { settings: windows, createConnection: tlsClient }) : null;
    net
      .createServer({ noDelay: true }, (down) => {
        if (mode === 'tcp') pipeBoth(down, net.connect({ ...target, noDelay: true }));
        else if (mode === 'tls') pipeBoth(down, tlsClient());
        else if (mode === 'h2lite') lite.open(down, `127.0.0.1:${targetPort}`);
        else pipeBoth(down, session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${targetPort}` }));
      })
      .listen(Number(listenPort), '127.0.0.1', ready);
  } else {
    const up = () => net.connect({ host: '127.0.0.1', port: Number(targetPort), noDelay: true });
    if (mode === 'tcp') net.createServer({ noDelay: true }, (s) => pipeBoth(s, up())).listen(Number(listenPort), '127.0.0.1', ready);
    else if (mode === 'tls') {
      const srv = tls.createServer({ ...creds, ALPNProtocols: ['h2'] }, (s) => pipeBoth(s, up()));
      srv.on('secureConnection', (s) => s.setNoDelay(true));
      srv.listen(Number(listenPort), '127.0.0.1', ready);
    } else if (mode === 'h2lite') {
      const srv = tls.createServer({ ...creds, ALPNProtocols: ['h2'] }, (s) => {
        s.setNoDelay(true);
        const session = new LiteSession(s, true, (id) => {
          session.sock.write(Buffer.concat([frameHeader(1, FRAME.HEADERS, 4, id), Buffer.from([0x88])])); // :status 200
          session.attach(id, up(), null);
        });
      });
      srv.listen(Number(listenPort), '127.0.0.1', ready);
    } else {
      const srv = http2.createSecureServer({ ...creds, settings: windows });
      srv.on('secureConnection', (s) => s.setNoDelay(true));
      srv.on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        pipeBoth(stream, up());
      });
      srv.listen(Number(listenPort), '127.0.0.1', ready);
    }
  }
  process.on('message', (m) => {
    if (m !== 'usage') return;
    const u = process.cpuUsage();
    process.send({ cpuS: (u.user + u.system) / 1e6, rssMb: process.memoryUsage().rss / 2 ** 20 });
  });
}

// ---- driver ---------------------------------------------------------------------------------------------

function selfSigned() {
  const forge = require('node-forge');
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(key);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3600_000);
  cert.setSubject([{ name: 'commonName', value: 'relay-layers' }]);
  cert.setIssuer(cert.subject.attributes);
  cert.sign(priv, forge.md.sha256.create());
  return { key, cert: forge.pki.certificateToPem(cert) };
}

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));
const freePort = async () => {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
};
const pin = (pid, cpu) => execFileSync('taskset', ['-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });

async function startRelays(mode, serverPort, creds) {
  // `direct`: no relay at all, the baseline every relay's added latency is measured against
  if (mode === 'direct') return { port: serverPort, usage: async () => [{ cpuS: 0 }, { cpuS: 0 }], stop: () => undefined };
  const [inPort, outPort] = [await freePort(), await freePort()];
  const env = { ...process.env, RELAY_CREDS: JSON.stringify(creds) };
  const spawnRelay = async (args) => {
    const p = fork(__filename, ['relay', mode, ...args], { env });
    await new Promise((resolve, reject) => {
      p.once('message', resolve);
      p.once('exit', (code) => reject(new Error(`relay ${mode} ${args[0]} exited (${code})`)));
    });
    pin(p.pid, 1);
    return p;
  };
  const relays = [await spawnRelay(['in', String(inPort), String(serverPort)])];
  relays.push(await spawnRelay(['out', String(outPort), String(inPort)]));
  const ask = (p) =>
    new Promise((resolve) => {
      p.once('message', resolve);
      p.send('usage');
    });
  const usage = () => Promise.all(relays.map(ask));
  return { port: outPort, usage, stop: () => relays.forEach((p) => p.kill()) };
}

async function rr(mode, creds, { rate, secs }) {
  const server = net.createServer({ noDelay: true }, (s) => {
    let pending = 0;
    const resp = Buffer.alloc(1024, 'r');
    s.on('data', (d) => {
      for (pending += d.length; pending >= 100; pending -= 100) s.write(resp);
    });
  });
  const relays = await startRelays(mode, await listen(server), creds);
  try {
    const connect = () =>
      new Promise((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port: relays.port, noDelay: true }, () => resolve(c));
      });
    const conns = await Promise.all([connect(), connect(), connect(), connect()]);
    const lat = [];
    for (const c of conns) {
      c.sentAt = [];
      c.got = 0;
      c.on('data', (d) => {
        for (c.got += d.length; c.got >= 1024; c.got -= 1024) lat.push(performance.now() - c.sentAt.shift());
      });
    }
    const req = Buffer.alloc(100, 'q');
    const load = (seconds) =>
      new Promise((done) => {
        const start = performance.now();
        const n = rate * seconds;
        let i = 0;
        const tick = () => {
          const now = performance.now();
          for (; i < n && start + (i * 1000) / rate <= now; i++) {
            const c = conns[i % conns.length];
            c.sentAt.push(start + (i * 1000) / rate);
            c.write(req);
          }
          if (i < n) setImmediate(tick);
          else setTimeout(done, 300);
        };
        tick();
      });
    await load(1);
    lat.length = 0;
    const before = await relays.usage();
    await load(secs);
    const after = await relays.usage();
    conns.forEach((c) => c.destroy());
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    const cpu = after.map((a, k) => a.cpuS - before[k].cpuS);
    return {
      p50_ms: q(0.5),
      p90_ms: q(0.9),
      p99_ms: q(0.99),
      lost: rate * secs - lat.length,
      cpu_s_per_1k_per_relay: ((cpu[0] + cpu[1]) / 2 / (rate * secs)) * 1000,
    };
  } finally {
    relays.stop();
    server.close();
  }
}

async function bulk(mode, creds, { mib }) {
  const total = mib * 2 ** 20;
  let got = 0;
  let finished;
  const done = new Promise((r) => (finished = r));
  const server = net.createServer((s) => s.on('data', (d) => (got += d.length) >= total && finished()));
  const relays = await startRelays(mode, await listen(server), creds);
  try {
    const before = await relays.usage();
    const c = net.connect({ host: '127.0.0.1', port: relays.port });
    const chunk = Buffer.alloc(256 * 1024, 'b');
    let sent = 0;
    const t0 = performance.now();
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!c.write(chunk)) return void c.once('drain', pump);
      }
    };
    c.on('connect', pump);
    await done;
    const secs = (performance.now() - t0) / 1000;
    const after = await relays.usage();
    c.destroy();
    const cpu = after.reduce((s, a, k) => s + a.cpuS - before[k].cpuS, 0);
    return { gbit_s: (total * 8) / secs / 1e9, cpu_s_per_gb_both: cpu / (total / 1e9), rss_mb: after.map((a) => Math.round(a.rssMb)) };
  } finally {
    relays.stop();
    server.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(argv) {
  const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
  const reps = Number(opt('reps', '3'));
  const modes = opt('only', 'direct,tcp,tls,h2,h2lite').split(',');
  const plan = { rate: Number(opt('rate', '1000')), secs: Number(opt('secs', '10')), mib: Number(opt('bulk-mib', '1024')) };
  pin(process.pid, 0);
  const creds = selfSigned();
  const runs = Object.fromEntries(modes.map((m) => [m, { rr: [], bulk: [] }]));
  for (let rep = 0; rep < reps; rep++) {
    // interleaved, so a noisy minute hits every mode alike
    for (const m of modes) {
      runs[m].rr.push(await rr(m, creds, plan));
      runs[m].bulk.push(await bulk(m, creds, plan));
      process.stderr.write(`rep ${rep + 1}/${reps} ${m}: ${JSON.stringify(runs[m].rr.at(-1))} ${JSON.stringify(runs[m].bulk.at(-1))}\n`);
    }
  }
  const f = (x, d = 3) => x.toFixed(d);
  console.log(`relay-layers: ${reps} reps, median; rr ${plan.rate} rps over 4 connections for ${plan.secs} s; bulk ${plan.mib} MiB one stream`);
  console.log('| relay | rr p50 ms | rr p90 ms | rr p99 ms | added p50 / p90 / p99 ms (over direct) | rr CPU s per 1k req per relay | bulk Gbit/s | bulk CPU s per GB (both relays) |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const m of modes) {
    const r = runs[m];
    const md = (k, xs) => median(xs.map((x) => x[k]));
    // pairwise within each repetition, then the median
    const added = (k) => (runs.direct && m !== 'direct' ? f(median(r.rr.map((x, i) => x[k] - runs.direct.rr[i][k]))) : '–');
    console.log(
      `| ${m} | ${f(md('p50_ms', r.rr))} | ${f(md('p90_ms', r.rr))} | ${f(md('p99_ms', r.rr))} | ${added('p50_ms')} / ${added('p90_ms')} / ${added('p99_ms')} | ${m === 'direct' ? '–' : f(md('cpu_s_per_1k_per_relay', r.rr))} | ${f(md('gbit_s', r.bulk), 2)} | ${m === 'direct' ? '–' : f(md('cpu_s_per_gb_both', r.bulk), 2)} |`,
    );
  }
}

if (process.argv[2] === 'relay') runRelay(process.argv.slice(3), JSON.parse(process.env.RELAY_CREDS));
else
  main(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
