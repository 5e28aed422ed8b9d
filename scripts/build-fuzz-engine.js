#!/usr/bin/env node
// Builds the fuzz engine (test/fuzz/engine/fuzz-engine.cc, node-addon-api) linked with LLVM's libFuzzer from
// Debian's libclang-rt-*-dev, into test/fuzz/engine/build/fuzz-engine.node. Offline: Node's headers from
// /usr/include/node (or npm_config_nodedir), nothing downloaded. Skips the compile when the output is newer
// than the source.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'test', 'fuzz', 'engine', 'fuzz-engine.cc');
const out = path.join(root, 'test', 'fuzz', 'engine', 'build', 'fuzz-engine.node');

function fail(msg) {
  console.error(`build-fuzz-engine: ${msg}`);
  process.exit(1);
}

const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];
if (!arch) fail(`no libFuzzer archive name known for ${process.arch}`);
/** The newest libclang_rt.fuzzer_no_main under /usr/lib/llvm-N (Debian's libclang-rt-N-dev). */
function findLibFuzzer() {
  const found = [];
  for (const llvm of fs.readdirSync('/usr/lib').filter((d) => /^llvm-\d+$/.test(d))) {
    const clangDir = path.join('/usr/lib', llvm, 'lib', 'clang');
    if (!fs.existsSync(clangDir)) continue;
    for (const v of fs.readdirSync(clangDir)) {
      const a = path.join(clangDir, v, 'lib', 'linux', `libclang_rt.fuzzer_no_main-${arch}.a`);
      if (fs.existsSync(a)) found.push({ a, major: Number(llvm.slice(5)) });
    }
  }
  found.sort((x, y) => y.major - x.major);
  return found[0]?.a;
}
const libFuzzer = findLibFuzzer();
if (!libFuzzer) fail('no libclang_rt.fuzzer_no_main archive under /usr/lib/llvm-*: install libclang-rt-14-dev (bash scripts/dev.sh setup does)');
const nodeDir = process.env.npm_config_nodedir || '/usr';
const nodeInclude = path.join(nodeDir, 'include', 'node');
if (!fs.existsSync(path.join(nodeInclude, 'node_api.h'))) fail(`no Node headers at ${nodeInclude}; set npm_config_nodedir to a Node headers dir`);
const addonApi = path.dirname(require.resolve('node-addon-api/package.json', { paths: [root] }));

if (fs.existsSync(out) && fs.statSync(out).mtimeMs > Math.max(fs.statSync(src).mtimeMs, fs.statSync(__filename).mtimeMs)) {
  console.log(`build-fuzz-engine: ${path.relative(root, out)} is up to date`);
  process.exit(0);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
const args = [
  '-O2', '-std=c++17', '-shared', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-Werror',
  `-I${nodeInclude}`, `-I${addonApi}`, '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  src, libFuzzer, '-lpthread', '-o', out,
];
const res = spawnSync(process.env.CXX || 'g++', args, { stdio: 'inherit' });
if (res.status !== 0) fail(`the compile failed (${process.env.CXX || 'g++'} ${args.join(' ')})`);
console.log(`build-fuzz-engine: ${path.relative(root, out)} (libFuzzer from ${libFuzzer})`);
