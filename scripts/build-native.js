#!/usr/bin/env node
// Builds native/ (node-addon-api + system libbpf) with cmake-js into native/build/Release/nodemesh.node.
// Offline by design: when the distro ships Node headers (/usr/include/node), cmake-js is pointed at them
// through npm_config_nodedir so it never tries to download a header tarball.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = { ...process.env };
if (!env.npm_config_nodedir && fs.existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';
if (!env.npm_config_nodedir) {
  console.error('build-native: no Node headers at /usr/include/node; set npm_config_nodedir to a Node source/headers dir');
  process.exit(1);
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const args = [cmakeJs, 'build', '--directory', path.join(root, 'native'), '--out', path.join(root, 'native', 'build')];
if (process.argv.includes('--debug')) args.push('--debug');
const res = spawnSync(process.execPath, args, { stdio: 'inherit', env, cwd: root });
if (res.status !== 0) {
  console.error('build-native: cmake-js failed (needs cmake, g++, pkg-config and libbpf-dev/libelf-dev)');
  process.exit(res.status ?? 1);
}
const out = path.join(root, 'native', 'build', 'Release', 'nodemesh.node');
if (!fs.existsSync(out)) {
  console.error(`build-native: expected ${out} after the build`);
  process.exit(1);
}
console.log(`build-native: ${path.relative(root, out)}`);
