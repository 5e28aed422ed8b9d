// `nodemesh admin --node NAME PATH`: GET an agent's admin endpoint over its unix socket.

import path from 'node:path';
import type { Command } from 'commander';
import { unixRequest } from '../enroll/client';
import { nodeStateDir } from '../lab/paths';

export function registerAdminCommand(program: Command): void {
  program
    .command('admin')
    .description("print an agent's admin response (e.g. /config_dump, /metrics, /connections, /healthz/ready)")
    .argument('<path>', 'admin path, e.g. /config_dump')
    .option('--node <name>', 'lab node whose agent to ask')
    .option('--lab <name>', 'lab name', 'lab')
    .option('--state-dir <dir>', "agent state dir (for a non-lab agent)", '/run/nodemesh/agent')
    .option('-X, --method <method>', 'HTTP method', 'GET')
    .action(async (p: string, o: { node?: string; lab: string; stateDir: string; method: string }) => {
      const dir = o.node ? nodeStateDir(o.lab, o.node) : o.stateDir;
      const socket = path.join(dir, 'admin.sock');
      let res;
      try {
        res = await unixRequest(socket, o.method.toUpperCase(), p.startsWith('/') ? p : `/${p}`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const what = o.node ? `the agent of node ${o.node} in lab ${o.lab}` : `the agent with state dir ${o.stateDir}`;
        throw new Error(`cannot reach ${what} at ${socket}: ${e.code ?? e.message} (is it running? "nodemesh lab status" lists agents)`);
      }
      process.stdout.write(res.body);
      if (res.status >= 400) process.exitCode = 1;
    });
}
