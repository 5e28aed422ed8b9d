#!/usr/bin/env node
// `npm run gen:envoy-types`: regenerates protos/envoy-types.json (the Envoy types the agent and control
// plane use) from the .proto files in @grpc/grpc-js-xds. Run it after upgrading that package; the unit
// test xds-descriptor fails while the stored file differs from what this writes.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist', 'src', 'xds', 'envoy-descriptor.js');
if (!fs.existsSync(dist)) {
  console.error('gen-envoy-types: dist/ is missing; run "npm run build:ts" first');
  process.exit(2);
}
const { generateEnvoyDescriptor } = require(dist);
const out = path.join(__dirname, '..', 'protos', 'envoy-types.json');
fs.writeFileSync(out, generateEnvoyDescriptor());
console.log(`wrote ${path.relative(process.cwd(), out)}`);
