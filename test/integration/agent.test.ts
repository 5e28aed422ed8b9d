import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../../src/agent/agent';
import { EnrollClient, unixRequest } from '../../src/enroll/client';
import type { EnrollRequest } from '../../src/enroll/protocol';
import { silentLogger } from '../../src/telemetry/logger';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { echoServer, listen, pump } from '../helpers/tcp';

describe('agent (in-process, fake datapath)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-agent-'));
  fs.mkdirSync(path.join(dir, 'cg', 'pod-a'), { recursive: true });
  const dp = new FakeDatapath();
  const agent = testAgent(dir, dp);
  const echo = echoServer();
  let echoPort = 0;
  const client = () => new EnrollClient(agent.enrollSocket);
  const podA: EnrollRequest = {
    uid: 'uid-a',
    name: 'client',
    namespace: 'default',
    serviceAccount: 'client',
    netnsPath: '/proc/self/ns/net',
    cgroupPath: path.join(dir, 'cg', 'pod-a'),
    ips: ['198.18.5.10'],
    labels: { app: 'client' },
  };

  before(async () => {
    echoPort = await listen(echo);
    await agent.start();
  });
  after(async () => {
    await agent.shutdown();
    echo.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is ready once the datapath is open and enrollment reconciled', async () => {
    const res = await unixRequest(agent.adminSocket, 'GET', '/healthz/ready');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ready\n');
  });

  it('enrolls a pod and relays its redirected connections, counting them', async () => {
    const pod = await client().enroll(podA);
    assert.equal(pod.name, 'client');
    assert.equal(pod.netnsCookie, '101');
    dp.originalDestination = { ip: '127.0.0.1', port: echoPort };
    const r = await pump(dp.pods.get('uid-a')!.outboundPort, 1 << 20);
    assert.ok(r.intact);
    const metrics = (await unixRequest(agent.adminSocket, 'GET', '/metrics')).body;
    const labels =
      'reporter="source",source_workload="client",source_workload_namespace="default",source_principal="unknown",' +
      'destination_workload="unknown",destination_workload_namespace="unknown",destination_principal="unknown",' +
      'destination_service="unknown",connection_security_policy="unknown",response_flags="-"';
    assert.ok(metrics.includes(`istio_tcp_connections_opened_total{${labels}} 1\n`), metrics);
    assert.ok(metrics.includes(`istio_tcp_connections_closed_total{${labels}} 1\n`));
    assert.ok(metrics.includes(`istio_tcp_received_bytes_total{${labels}} 1048576\n`));
    assert.ok(metrics.includes(`istio_tcp_sent_bytes_total{${labels}} 1048576\n`));
    assert.ok(metrics.includes('nodemesh_redirected_connections_total{pod="client",namespace="default"} 3\n'));
    const conns = JSON.parse((await unixRequest(agent.adminSocket, 'GET', '/connections')).body);
    assert.equal(conns.recent.at(-1).dst, `127.0.0.1:${echoPort}`);
    assert.equal(conns.recent.at(-1).bytesUp, 1 << 20);
  });

  it('resets connections with no recorded original destination and counts why', async () => {
    dp.originalDestination = null;
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const s = net.connect(dp.pods.get('uid-a')!.outboundPort, '127.0.0.1');
      s.on('error', resolve);
      s.on('close', () => resolve(null));
      s.resume();
    });
    assert.equal(err?.code, 'ECONNRESET');
    const metrics = (await unixRequest(agent.adminSocket, 'GET', '/metrics')).body;
    assert.ok(metrics.includes('nodemesh_proxy_errors_total{direction="outbound",reason="no_original_dst"} 1\n'));
  });

  it('rejects bad requests with clear errors and applies nothing', async () => {
    const bad = async (method: string, p: string, body?: string) => {
      const res = await unixRequest(agent.enrollSocket, method, p, body);
      return { status: res.status, error: JSON.parse(res.body).error as { code: string; message: string } };
    };
    let r = await bad('POST', '/v1/pods', '{"uid": ');
    assert.equal(r.status, 400);
    assert.equal(r.error.code, 'NM_ENROLL_MALFORMED_JSON');
    r = await bad('POST', '/v1/pods', JSON.stringify({ ...podA, uid: 'x', ips: ['10.0.0.300'] }));
    assert.equal(r.status, 400);
    assert.match(r.error.message, /ips contains "10\.0\.0\.300"/);
    r = await bad('POST', '/v1/pods', JSON.stringify({ ...podA, uid: 'x', ips: ['198.18.5.11'], netnsPath: '/run/netns/nm-does-not-exist' }));
    assert.equal(r.status, 400);
    assert.equal(r.error.code, 'NM_ENROLL_NO_NETNS');
    assert.match(r.error.message, /network namespace \/run\/netns\/nm-does-not-exist does not exist/);
    r = await bad('POST', '/v1/pods', JSON.stringify({ ...podA, uid: 'x', ips: ['198.18.5.11'], cgroupPath: '/nonexistent-cg' }));
    assert.equal(r.error.code, 'NM_ENROLL_NO_CGROUP');
    r = await bad('POST', '/v1/pods', JSON.stringify(podA));
    assert.equal(r.status, 409);
    assert.equal(r.error.code, 'NM_ENROLL_DUPLICATE');
    r = await bad('POST', '/v1/pods', JSON.stringify({ ...podA, uid: 'uid-b' }));
    assert.equal(r.error.code, 'NM_ENROLL_IP_CONFLICT');
    r = await bad('DELETE', '/v1/pods/nope');
    assert.equal(r.status, 404);
    assert.equal(r.error.code, 'NM_ENROLL_UNKNOWN_POD');
    dp.failNextEnroll = new Error('simulated kernel failure');
    r = await bad('POST', '/v1/pods', JSON.stringify({ ...podA, uid: 'uid-c', ips: ['198.18.5.12'] }));
    assert.equal(r.status, 500);
    assert.match(r.error.message, /simulated kernel failure/);
    const pods = await client().list();
    assert.deepEqual(pods.map((p) => p.uid), ['uid-a']);
  });

  it('a restarted agent restores enrolled pods from its state dir and drops ones whose netns is gone', async () => {
    const statePath = path.join(dir, 'state', 'pods.json');
    const saved = JSON.parse(fs.readFileSync(statePath, 'utf8'));
    saved.pods.push({ ...saved.pods[0], uid: 'uid-gone', name: 'gone', ips: ['198.18.5.99'], netnsPath: '/run/netns/nm-gone' });
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-agent2-'));
    fs.mkdirSync(path.join(dir2, 'state'), { recursive: true });
    fs.writeFileSync(path.join(dir2, 'state', 'pods.json'), JSON.stringify(saved));
    const dp2 = new FakeDatapath();
    const restarted = new Agent({ ...agent.opts, stateDir: path.join(dir2, 'state') }, silentLogger(), async () => dp2);
    try {
      await restarted.start();
      assert.deepEqual(restarted.list().map((p) => p.uid), ['uid-a']);
      assert.deepEqual([...dp2.pods.keys()], ['uid-a']);
      const onDisk = JSON.parse(fs.readFileSync(path.join(dir2, 'state', 'pods.json'), 'utf8'));
      assert.deepEqual(onDisk.pods.map((p: { uid: string }) => p.uid), ['uid-a']);
    } finally {
      await restarted.shutdown();
      fs.rmSync(dir2, { recursive: true, force: true });
    }
    assert.deepEqual(dp2.closed, { detach: true });
  });

  it('unenrolls: stops accepting on the pod listeners', async () => {
    const port = dp.pods.get('uid-a')!.outboundPort;
    await client().unenroll('uid-a');
    assert.equal(dp.pods.size, 0);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', resolve);
      s.on('connect', () => {
        s.destroy();
        resolve(null);
      });
    });
    assert.equal(err?.code, 'ECONNREFUSED');
  });
});

describe('agent liveness and readiness', () => {
  it('is alive while it waits for the control plane, and not ready until it has a config', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-agent-live-'));
    const agent = testAgent(dir, new FakeDatapath(), { xds: { address: `unix://${path.join(dir, 'no-control-plane.sock')}`, mode: 'delta' } });
    try {
      await agent.start();
      const ready = await unixRequest(agent.adminSocket, 'GET', '/healthz/ready');
      assert.equal(ready.status, 503);
      assert.match(ready.body, /waiting for the first complete config from the control plane/);
      const live = await unixRequest(agent.adminSocket, 'GET', '/healthz/live');
      assert.deepEqual([live.status, live.body], [200, 'alive\n']);
    } finally {
      await agent.shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
