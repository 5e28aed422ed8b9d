// `check --proxy` on a node: each agent's admin socket says whether it is ready, has valid certificates, has
// ACKed its config, and how many pods it enrolled.

import { unixRequest } from '../enroll/client';
import { fail, ok, warn, type CheckResult } from './report';

interface ConfigDump {
  node: string;
  pods: unknown[];
  xds: { synced: boolean; connected: boolean; lastError: string | null; lastNack: Record<string, string | null> } | null;
  mesh: { identities: { spiffeId: string; state: string; notAfter: string | null; lastError: string | null }[] } | null;
}

export async function agentProxyChecks(adminSocket: string, now = Date.now()): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  let ready;
  try {
    ready = await unixRequest(adminSocket, 'GET', '/healthz/ready', undefined, 5000);
  } catch (err) {
    return [fail(`agent ${adminSocket}`, `not answering: ${(err as Error).message}`, 'is the agent running on this node? (kubectl -n nodemesh-system get pods -o wide)')];
  }
  const dump = JSON.parse((await unixRequest(adminSocket, 'GET', '/config_dump', undefined, 5000)).body) as ConfigDump;
  const who = `agent ${dump.node}`;
  out.push(ready.status === 200 ? ok(`${who} ready`, 'ready') : fail(`${who} ready`, ready.body.trim(), 'the reason names what the agent waits for'));
  if (!dump.xds) out.push(warn(`${who} xds`, 'no control plane configured', 'start the agent with --xds'));
  else {
    const nacks = Object.entries(dump.xds.lastNack ?? {}).filter(([, v]) => v);
    if (!dump.xds.synced) out.push(fail(`${who} xds`, `no complete config ACKed yet${dump.xds.lastError ? ` (${dump.xds.lastError})` : ''}`, 'check that the control plane is reachable and accepts this agent\'s token'));
    else if (nacks.length) out.push(fail(`${who} xds`, `NACKed ${nacks.map(([t, v]) => `${t}: ${v}`).join('; ')}`, 'the control plane sent config this agent cannot use: see the message'));
    else out.push(ok(`${who} xds`, dump.xds.connected ? 'config ACKed, stream up' : 'config ACKed; stream down, serving the last config'));
  }
  for (const id of dump.mesh?.identities ?? []) {
    const valid = id.notAfter !== null && Date.parse(id.notAfter) > now;
    out.push(
      valid
        ? ok(`${who} certificate`, `${id.spiffeId} valid until ${id.notAfter}`)
        : fail(`${who} certificate`, `${id.spiffeId}: ${id.notAfter ? `expired at ${id.notAfter}` : 'not issued'}${id.lastError ? ` (${id.lastError})` : ''}`, 'check the CA: its logs say why it refused'),
    );
  }
  out.push(ok(`${who} pods`, `${dump.pods.length} enrolled`));
  return out;
}
