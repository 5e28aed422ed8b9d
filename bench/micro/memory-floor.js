#!/usr/bin/env node
// How much memory a Node.js process needs before an agent does anything: bare Node, then the modules every
// agent on this stack loads (TLS and HTTP/2, @grpc/grpc-js for xDS and the CA, prom-client and pino for
// telemetry), then the agent command's whole module graph (dist/). Each set in a fresh process with the
// lab's agent flags, measured idle after a full GC: VmRSS, RssAnon (private), RssFile, V8 heap used.
// Answers "is 50 MB idle VmRSS reachable for a Node agent" (bench/README.md, "Why").
//
//   node bench/micro/memory-floor.js [--reps 3]
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

// The probe reads /proc itself rather than through lib/system.js (procMem): it must load nothing but the
// modules under test, or their cost would include the harness's.
function probe(mods) {
  for (const m of mods) require(m.startsWith('.') ? path.join(ROOT, m) : m);
  setTimeout(() => {
    global.gc();
    setTimeout(() => {
      const st = fs.readFileSync('/proc/self/status', 'utf8');
      const mb = (k) => Number(st.match(new RegExp(`${k}:\\s+(\\d+)`))[1]) / 1024;
      console.log(JSON.stringify({ rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile'), heap: process.memoryUsage().heapUsed / 2 ** 20 }));
      process.exit(0);
    }, 500);
  }, 2000);
}

if (process.argv[2] === 'probe') {
  probe(process.argv.slice(3));
} else {
  const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 3;
  const { AGENT_NODE_FLAGS } = require(path.join(ROOT, 'dist/src/lab'));
  const sets = [
    ['bare node', []],
    ['+ tls, http2, crypto', ['node:tls', 'node:http2', 'node:crypto']],
    ['+ @grpc/grpc-js', ['node:tls', 'node:http2', 'node:crypto', '@grpc/grpc-js']],
    ['+ prom-client, pino', ['node:tls', 'node:http2', 'node:crypto', '@grpc/grpc-js', 'prom-client', 'pino']],
    ['the agent command (dist/)', ['./dist/src/cli/agent-command.js']],
  ];
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`Node ${process.version}, flags ${AGENT_NODE_FLAGS.join(' ')}, median of ${reps}\n`);
  console.log('| modules loaded | VmRSS MB | private (RssAnon) MB | file MB | V8 heap used MB |');
  console.log('|---|---|---|---|---|');
  for (const [name, mods] of sets) {
    const runs = [];
    for (let i = 0; i < reps; i++) {
      const out = execFileSync(process.execPath, [...AGENT_NODE_FLAGS, '--expose-gc', __filename, 'probe', ...mods], { cwd: ROOT, encoding: 'utf8' });
      runs.push(JSON.parse(out.trim().split('\n').pop()));
    }
    const f = (k) => median(runs.map((r) => r[k])).toFixed(1);
    console.log(`| ${name} | ${f('rss')} | ${f('anon')} | ${f('file')} | ${f('heap')} |`);
  }
}
