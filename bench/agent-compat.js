#!/usr/bin/env node
// Runs another build's agent (an older commit, built in its own worktree) under this checkout's lab and
// harness, for A/B runs: the lab passes flags that build's CLI may not know yet (--probe-host, --trace-sampling,
// …), and commander refuses unknown options. Each "--flag [value]" the other build's agent command does not
// define is dropped (listed on stderr, so the agent's log says what it ran without); the rest goes through.
//
//   node bench/run.js --agent-command "node --single-threaded-gc --max-semi-space-size=1 \
//     bench/agent-compat.js /work/wt-old/dist/src/cli/main.js agent [flags for that build]"
//
// Give the lab's V8 flags (src/lab/up.ts AGENT_NODE_FLAGS) yourself, as above: --agent-command replaces the
// whole prefix. The other build must take the lab's control plane: an agent that predates the L7 listeners
// NACKs them and never becomes ready, so run such a build with --no-l7.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const main = process.argv[2];
if (!main || !fs.existsSync(main)) {
  console.error('agent-compat: the first argument must be the other build\'s dist/src/cli/main.js (run "npm ci && npm run build" in its worktree)');
  process.exit(2);
}
const commandFile = path.join(path.dirname(main), 'agent-command.js');
if (!fs.existsSync(commandFile)) {
  console.error(`agent-compat: ${commandFile} is missing: is ${main} a nodemesh build?`);
  process.exit(2);
}
const known = fs.readFileSync(commandFile, 'utf8');
/** commander declares each option as "'--name <arg>'" or "'--name'" (and --help itself); anything else is unknown there. */
const defined = (flag) => flag === '--help' || known.includes(`'${flag} `) || known.includes(`'${flag}'`) || known.includes(`"${flag} `) || known.includes(`"${flag}"`);

const args = process.argv.slice(3);
const kept = [];
const dropped = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a.startsWith('--') && !a.includes('=') && !defined(a)) {
    dropped.push(a);
    if (i + 1 < args.length && !args[i + 1].startsWith('--')) dropped.push(args[++i]);
    continue;
  }
  kept.push(a);
}
if (dropped.length > 0) console.error(`agent-compat: ${path.dirname(path.dirname(path.dirname(path.dirname(main))))}'s agent does not know ${dropped.join(' ')}: left out`);
process.argv = [process.argv[0], main, ...kept];
require(main);
