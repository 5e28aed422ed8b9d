#!/usr/bin/env node
// Runs the compiled test tiers with node's test runner: unit (no root, no network),
// integration (in-process agent pieces, loopback only), e2e (root, real eBPF in lab namespaces).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration', 'e2e'];

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const files = tiers.flatMap((t) => find(path.join(root, 'dist', 'test', t)));
if (files.length === 0) {
  console.error(`no compiled tests found for ${tiers.join(', ')}; run "npm run build" first`);
  process.exit(1);
}
// e2e tests share the kernel (pins, cgroups, netns names): run files one at a time.
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(res.status ?? 1);
