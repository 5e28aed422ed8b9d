// An in-process Agent for integration tests: the given datapath, ephemeral ports, state and cgroups under `dir`.

import path from 'node:path';
import { Agent, type AgentOptions } from '../../src/agent/agent';
import type { Datapath } from '../../src/datapath/types';
import { silentLogger } from '../../src/telemetry/logger';

/** A not yet started Agent on node `node-t`; `opts` override or add to the defaults. */
export function testAgent(dir: string, dp: Datapath, opts: Partial<AgentOptions> = {}): Agent {
  return new Agent(
    {
      node: 'node-t',
      stateDir: path.join(dir, 'state'),
      pinRoot: '/fake',
      cgroupRoot: path.join(dir, 'cg'),
      adminPort: 0,
      metricsPort: 0,
      readyPort: 0,
      adminHost: '127.0.0.1',
      drainMs: 2000,
      ...opts,
    },
    silentLogger(),
    async () => dp,
  );
}
