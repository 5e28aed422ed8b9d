// What an agent process loads: its own code and the libraries it uses, nothing the control plane or lab needs.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

test('the agent command loads neither node-forge, @grpc/proto-loader nor the control plane, lab or demo', () => {
  const entry = path.join(__dirname, '../../src/cli/agent-command.js');
  const loaded = JSON.parse(
    execFileSync(process.execPath, ['-e', `require(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(require.cache)))`], {
      encoding: 'utf8',
    }),
  ) as string[];
  assert.ok(loaded.some((f) => f.endsWith(`${path.sep}agent${path.sep}agent.js`)), 'sanity: the agent itself is loaded');
  assert.ok(loaded.some((f) => f.includes(`${path.sep}identity${path.sep}pki.js`)), 'sanity: the agent\'s PKI helpers are loaded');
  const unwanted = loaded.filter((f) => /node_modules[/\\](node-forge|@grpc[/\\]proto-loader)[/\\]|[/\\]src[/\\](controlplane|lab|sample)[/\\]|demo-command/.test(f));
  assert.deepEqual(unwanted, [], 'modules an agent should not carry');
  // undici's Pool alone (upstream-pools.ts), not its entry with fetch, WebSocket and the rest
  assert.ok(loaded.some((f) => /undici[/\\]lib[/\\]dispatcher[/\\]pool\.js$/.test(f)), 'sanity: undici\'s Pool is loaded');
  const undiciExtras = loaded.filter((f) => /node_modules[/\\]undici[/\\](index\.js|lib[/\\](web|mock|cache)[/\\])/.test(f));
  assert.deepEqual(undiciExtras, [], 'undici beyond its Pool');
});

test('the Pool the agent loads alone is undici\'s exported Pool', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  assert.equal(require('undici/lib/dispatcher/pool'), (require('undici') as typeof import('undici')).Pool);
});
