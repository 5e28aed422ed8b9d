#!/usr/bin/env node
// What a flood of connections that never finish a TLS handshake (idle, or a partial ClientHello) costs an
// HBONE server, and what stays afterwards: the server (dist/, the lab's agent flags) in a child process on
// loopback, floods from SOURCES addresses (127.1.0.x), rounds of COUNT connections held until the server
// closes them. Per round, in MB: RSS before, at its peak (with the most handshakes in progress seen), once
// every flood connection is closed, after a full GC (TLS sockets left on the JS heap, counted in a heap
// snapshot taken after that RSS reading, and the V8 heap used), and after relieveMemory() (the addon: V8's
// LowMemoryNotification, then malloc_trim). Answers "leak or allocator retention"
// (bench/README.md, "Handshake floods").
//
//   node bench/micro/handshake-flood.js [--count 3000] [--rounds 2] [--sources 2] [--limits default|none] [--timeout-ms 10000]
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const v8 = require('node:v8');

const ROOT = path.resolve(__dirname, '..', '..');
const PARTIAL_HELLO = Buffer.from('160301020001' + '0001fc0303' + '00'.repeat(16), 'hex');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

/** Heap snapshot → how many objects of each constructor name in `names`. */
function countObjects(file, names) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, step] = [f.indexOf('type'), f.indexOf('name'), f.length];
  const out = Object.fromEntries(names.map((n) => [n, 0]));
  for (let i = 0; i < snap.nodes.length; i += step) {
    const name = snap.strings[snap.nodes[i + ni]];
    if (types[snap.nodes[i + ti]] === 'object' && name in out) out[name]++;
  }
  return out;
}

function server(limits, timeoutMs) {
  const { HboneServer } = require(path.join(ROOT, 'dist/src/proxy/hbone'));
  const { HandshakeLimiter } = require(path.join(ROOT, 'dist/src/proxy/hbone/handshake-limits'));
  const { loadNative } = require(path.join(ROOT, 'dist/src/datapath/native'));
  const { createTestCa } = require(path.join(ROOT, 'dist/test/helpers/test-ca'));
  const ca = createTestCa({ name: 'bench' });
  const leaf = ca.issue({ spiffeId: 'spiffe://cluster.local/ns/default/sa/bench' });
  const limiter = new HandshakeLimiter(limits === 'none' ? { perSource: 1e6, perPod: 1e6, total: 1e6 } : undefined);
  const s = new HboneServer({ identity: () => leaf, trustBundle: () => [ca.rootPem], onConnect: (_c, r) => r(200), handshakeTimeoutMs: timeoutMs, handshakeGate: limiter.gate() });
  const stats = (extra = {}) => {
    const m = process.memoryUsage();
    const st = s.stats();
    return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20, heapTotal: m.heapTotal / 2 ** 20, inProgress: st.handshakesInProgress, rejected: st.handshakesRejected, timeouts: st.handshakeTimeouts, handles: process._getActiveHandles().length, ...extra };
  };
  s.listen({ host: '127.0.0.1', port: 0 }).then((a) => {
    console.log(JSON.stringify({ port: a.port }));
    readline.createInterface({ input: process.stdin }).on('line', (cmd) => {
      if (cmd === 'gc') {
        global.gc();
        console.log(JSON.stringify(stats()));
      } else if (cmd === 'count') {
        const file = path.join(os.tmpdir(), `nm-flood-${process.pid}.heapsnapshot`);
        v8.writeHeapSnapshot(file);
        const left = countObjects(file, ['TLSSocket', 'TLSWrap']);
        fs.rmSync(file);
        console.log(JSON.stringify(stats(left)));
      } else if (cmd === 'relieve') {
        loadNative().relieveMemory();
        console.log(JSON.stringify(stats()));
      } else console.log(JSON.stringify(stats()));
    });
  });
}

async function flood(port, count, sources) {
  let open = 0;
  let connecting = 0;
  let wake = null;
  const all = [];
  for (let i = 0; i < count; i++) {
    while (connecting >= 200) await new Promise((r) => (wake = r));
    connecting++;
    all.push(
      new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.1.0.${1 + (i % sources)}` });
        const settle = () => {
          connecting--;
          if (wake) wake();
        };
        s.once('connect', () => {
          settle();
          open++;
          if (i % 2) s.write(PARTIAL_HELLO);
        });
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        s.once('close', (hadConnect) => {
          if (s.connecting || !hadConnect) settle();
          resolve();
        });
      }),
    );
  }
  await Promise.all(all);
  return open;
}

async function main() {
  const count = Number(arg('count', 3000));
  const rounds = Number(arg('rounds', 2));
  const sources = Number(arg('sources', 2));
  const limits = arg('limits', 'default');
  const timeoutMs = Number(arg('timeout-ms', 10_000));
  const { AGENT_NODE_FLAGS } = require(path.join(ROOT, 'dist/src/lab/up'));
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, '--expose-gc', __filename, 'server', limits, String(timeoutMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  const next = () => new Promise((r) => waiting.push(r));
  const ask = (cmd) => {
    const p = next();
    child.stdin.write(cmd + '\n');
    return p;
  };
  const { port } = await next();
  const f = (x) => x.toFixed(1);
  console.log(`Node ${process.version}, flags ${AGENT_NODE_FLAGS.join(' ')}; limits ${limits}, ${sources} source address(es), rounds of ${count}, handshake timeout ${timeoutMs} ms\n`);
  console.log('| round | RSS before | peak (handshakes in progress) | flood over | after full GC (TLS sockets left; V8 heap) | after relieveMemory | refused at accept |');
  console.log('|---|---|---|---|---|---|---|');
  for (let r = 1; r <= rounds; r++) {
    const before = await ask('stats');
    let peak = before.rss;
    let most = 0;
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        const s = await ask('stats');
        peak = Math.max(peak, s.rss);
        most = Math.max(most, s.inProgress);
        await new Promise((res) => setTimeout(res, 200));
      }
    })();
    await flood(port, count, sources);
    flooding = false;
    await sampler;
    await new Promise((res) => setTimeout(res, 500));
    const over = await ask('stats');
    const gc = await ask('gc');
    const left = await ask('count');
    const relieved = await ask('relieve');
    const rejected = Object.values(relieved.rejected).reduce((a, b) => a + b, 0);
    console.log(`| ${r} | ${f(before.rss)} | ${f(peak)} (${most}) | ${f(over.rss)} | ${f(gc.rss)} (${left.TLSSocket}; heap ${f(gc.heap)}) | ${f(relieved.rss)} | ${rejected} |`);
  }
  child.kill();
}

if (process.argv[2] === 'server') server(process.argv[3], Number(process.argv[4]));
else void main();
