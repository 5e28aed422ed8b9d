#!/usr/bin/env node
// The `nodemesh` binary: one entry point, one subcommand per process role.

import { Command } from 'commander';
import { version } from '../../package.json';

/**
 * Each role loads only its own code: an agent process does not carry the control plane, the lab, the demo
 * or their dependencies (about 5 MB of RSS and 10 MB of V8 heap). Help without a command lists them all.
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  agent: async () => (await import('./agent-command')).registerAgentCommand,
  admin: async () => (await import('./admin-command')).registerAdminCommand,
  controlplane: async () => (await import('./controlplane-command')).registerControlPlaneCommand,
  lab: async () => (await import('./lab-command')).registerLabCommand,
  sample: async () => (await import('./sample-command')).registerSampleCommand,
  demo: async () => (await import('./demo-command')).registerDemoCommand,
  check: async () => (await import('./check-command')).registerCheckCommand,
  install: async () => (await import('./install-command')).registerInstallCommands,
  uninstall: async () => (await import('./install-command')).registerInstallCommands,
  dashboard: async () => (await import('./observe-command')).registerObserveCommands,
  top: async () => (await import('./observe-command')).registerObserveCommands,
  tap: async () => (await import('./observe-command')).registerObserveCommands,
  stat: async () => (await import('./observe-command')).registerObserveCommands,
};

async function main(): Promise<void> {
  const program = new Command();
  program
    .name('nodemesh')
    .description('Sidecarless service mesh data plane: node agent, lab, and tools')
    .version(version);
  const invoked = process.argv[2];
  const names = invoked !== undefined && Object.hasOwn(COMMANDS, invoked) ? [invoked] : Object.keys(COMMANDS);
  const loaded = new Set<unknown>();
  for (const name of names) {
    const register = await COMMANDS[name]!();
    // install and uninstall share one registration
    if (!loaded.has(register)) register(program);
    loaded.add(register);
  }
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`nodemesh: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
  process.exit(1);
});
