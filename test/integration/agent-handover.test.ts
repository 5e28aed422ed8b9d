// The handover protocol between two in-process agents on one state dir (fake datapath): roles, the node's socket
// names moving, enrollment calls made during a handover, and a successor that goes away before taking over.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Agent } from '../../src/agent/agent';
import { EnrollClient, unixRequest } from '../../src/enroll/client';
import type { EnrollRequest } from '../../src/enroll/protocol';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { waitFor } from '../helpers/wait';

describe('agent handover (in-process, fake datapath)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-handover-'));
  const agents: Agent[] = [];
  const pod = (name: string, ip: string): EnrollRequest => {
    fs.mkdirSync(path.join(dir, 'cg', name), { recursive: true });
    return { uid: `uid-${name}`, name, namespace: 'default', serviceAccount: name, netnsPath: '/proc/self/ns/net', cgroupPath: path.join(dir, 'cg', name), ips: [ip] };
  };
  /** An agent whose datapath opens only when `open()` is called (to act while it is taking over). */
  const gated = (): { agent: Agent; open: () => void } => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    const dp = new FakeDatapath();
    const agent = testAgent(dir, dp, { handoverDrainMs: 60_000 });
    (agent as unknown as { openDatapath: () => Promise<FakeDatapath> }).openDatapath = async () => {
      await opened;
      return dp;
    };
    agents.push(agent);
    return { agent, open };
  };
  const dump = async (sock: string): Promise<{ agent: { role: string }; pods: { uid: string }[] }> => JSON.parse((await unixRequest(sock, 'GET', '/config_dump')).body);
  const enroll = (): EnrollClient => new EnrollClient(path.join(dir, 'state', 'enroll.sock'));

  after(async () => {
    for (const a of agents) await a.shutdown().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let first: Agent;
  let second: Agent;

  it('a second agent takes over from the first: it serves its pods, the node\'s sockets move to it, the first drains and exits', async () => {
    first = testAgent(dir, new FakeDatapath(), { handoverDrainMs: 60_000 });
    agents.push(first);
    await first.start();
    await enroll().enroll(pod('a', '198.18.5.10'));

    const g = gated();
    second = g.agent;
    const starting = second.start();
    await waitFor('the first agent to freeze enrollment', async () => first.agentStatus().role === 'handing-over');
    // Enrollment calls made now reach the successor, which handles them once it serves the node's pods.
    const added = enroll().enroll(pod('b', '198.18.5.11'));
    const removed = enroll().unenroll('uid-a');
    const ready = await unixRequest(second.privateAdminSocket, 'GET', '/healthz/ready');
    assert.equal(ready.status, 503);
    assert.match(ready.body, /taking over from agent \d+/);
    g.open();
    await starting;
    await added;
    await removed;

    assert.equal((await dump(second.adminSocket)).agent.role, 'active', 'admin.sock is the successor\'s');
    assert.match(String(first.agentStatus().role), /^draining$/);
    assert.deepEqual(second.list().map((p) => p.uid), ['uid-b']);
    const file = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'pods.json'), 'utf8')) as { pods: { uid: string }[] };
    assert.deepEqual(file.pods.map((p) => p.uid), ['uid-b']);
    assert.deepEqual((await enroll().list()).map((p) => p.uid), ['uid-b'], 'enroll.sock is the successor\'s');
    // Nothing open: the first agent's drain ends at once and it lets go of everything.
    await first.exited;
    assert.equal((await unixRequest(second.adminSocket, 'GET', '/healthz/ready')).status, 200);
  });

  it('a successor that goes away before taking over: the running agent carries on, enrollment included', async () => {
    const g = gated();
    const third = g.agent;
    const starting = third.start().catch((err: unknown) => err);
    await waitFor('the running agent to freeze enrollment', async () => second.agentStatus().role === 'handing-over');
    await third.shutdown();
    g.open();
    await starting;
    await waitFor('the running agent to resume', async () => second.agentStatus().role === 'active');
    assert.equal((await dump(second.adminSocket)).agent.role, 'active');
    await enroll().enroll(pod('c', '198.18.5.12'));
    assert.deepEqual(second.list().map((p) => p.uid).sort(), ['uid-b', 'uid-c']);
    assert.equal((await unixRequest(second.adminSocket, 'GET', '/healthz/ready')).status, 200);
  });
});
