#!/usr/bin/env node
// Folds V8 .cpuprofile files (node --cpu-prof) into self time by function and by area, so a profile
// of the agent under load reads as "where does the CPU go".
//
//   node bench/profile-summary.js FILE.cpuprofile [...] [--top 25] [--skip-s 12]
//
// --skip-s drops the first seconds of each profile (agent start-up: module loading, protobuf
// schemas, key generation), so what remains is the agent under the bench's load.
'use strict';

const fs = require('node:fs');

const files = process.argv.slice(2).filter((a) => a.endsWith('.cpuprofile'));
const ti = process.argv.indexOf('--top');
const TOP = ti > 0 ? Number(process.argv[ti + 1]) : 25;
const si = process.argv.indexOf('--skip-s');
const SKIP_US = si > 0 ? Number(process.argv[si + 1]) * 1e6 : 0;

/** The area a frame belongs to, from its script URL (or its name when V8 gives no URL). */
function area(fn, url) {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8/native (unattributed)';
  if (/internal\/http2|node:http2/.test(url)) return 'node http2 (JS)';
  if (/_tls_wrap|internal\/tls|node:tls/.test(url)) return 'node tls (JS)';
  if (/internal\/streams|stream_base_commons|node:stream/.test(url)) return 'node streams (JS)';
  if (/node:net|internal\/net/.test(url)) return 'node net (JS)';
  if (/internal\/timers|node:timers/.test(url)) return 'timers';
  if (/dist\/src\/proxy/.test(url)) return 'nodemesh proxy';
  if (/dist\/src\/telemetry|prom-client|pino/.test(url)) return 'telemetry / logging';
  if (/dist\/src\//.test(url)) return 'nodemesh other';
  if (/node_modules/.test(url)) return 'dependencies';
  if (url === '') return 'native builtins';
  if (/^node:/.test(url)) return 'node other (JS)';
  return 'other';
}

const byFn = new Map();
const byArea = new Map();
let total = 0;
let idle = 0;
for (const file of files) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const dt = new Map();
  // Self time per node from samples/timeDeltas (exact), not hitCount x mean interval.
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] || 0;
    if (t < SKIP_US) continue;
    dt.set(p.samples[i], (dt.get(p.samples[i]) || 0) + (p.timeDeltas[i + 1] || 0));
  }
  for (const n of p.nodes) {
    const us = dt.get(n.id) || 0;
    if (!us) continue;
    const cf = n.callFrame;
    const a = area(cf.functionName, cf.url);
    if (a === 'idle') {
      idle += us;
      continue;
    }
    total += us;
    const short = cf.url.replace(/^.*\/(dist\/src\/|node_modules\/)/, '$1').replace(/^file:\/\//, '');
    const key = `${cf.functionName || '(anonymous)'}  ${short}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) || 0) + us);
    byArea.set(a, (byArea.get(a) || 0) + us);
  }
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
console.log(`busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s, ${files.length} profile(s)\n`);
console.log('by area (self time):');
for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1])) console.log(`  ${pct(us)}  ${a}`);
console.log(`\ntop ${TOP} functions (self time):`);
for (const [k, us] of [...byFn].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`  ${pct(us)}  ${k}`);
