#!/usr/bin/env node
// The `nodemesh` binary: one entry point, one subcommand per process role.

import { Command } from 'commander';
import { version } from '../../package.json';
import { registerAdminCommand } from './admin-command';
import { registerAgentCommand } from './agent-command';
import { registerControlPlaneCommand } from './controlplane-command';
import { registerDemoCommand } from './demo-command';
import { registerLabCommand } from './lab-command';
import { registerSampleCommand } from './sample-command';

const program = new Command();
program
  .name('nodemesh')
  .description('Sidecarless service mesh data plane: node agent, lab, and tools')
  .version(version);

registerAgentCommand(program);
registerAdminCommand(program);
registerControlPlaneCommand(program);
registerLabCommand(program);
registerSampleCommand(program);
registerDemoCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`nodemesh: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
  process.exit(1);
});
