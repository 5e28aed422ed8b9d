// The agent following a real control plane over ADS (delta and SotW), NACKing what it cannot use, surviving outages.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../../src/agent/agent';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { EnrollClient, unixRequest } from '../../src/enroll/client';
import { silentLogger } from '../../src/telemetry/logger';
import type { XdsMode } from '../../src/xds/ads-client';
import { adsServiceDefinition, toAny, type DiscoveryRequest } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE } from '../../src/xds/resource-types';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { waitFor } from '../helpers/wait';

const VIP = '198.18.200.10';

function podYaml(name: string, ip: string): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: { app: echo } }
spec: { nodeName: node-t, serviceAccountName: echo, containers: [{ name: main, image: x }] }
status: { podIP: ${ip}, phase: Running }
`;
}

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  clusterIP: ${VIP}
  selector: { app: echo }
  ports: [{ name: tcp, port: 9000, targetPort: 9000 }]
`;

/** A server on ip:9000 that answers every connection with its own name. */
async function nameServer(ip: string, name: string): Promise<net.Server> {
  const s = net.createServer((c) => c.end(name));
  await new Promise<void>((r) => s.listen(9000, ip, () => r()));
  return s;
}

async function agentWith(dir: string, dp: FakeDatapath, address: string, mode: XdsMode): Promise<Agent> {
  fs.mkdirSync(path.join(dir, 'cg', 'client'), { recursive: true });
  const agent = testAgent(dir, dp, { drainMs: 500, xds: { address, mode } });
  await agent.start();
  await new EnrollClient(agent.enrollSocket).enroll({
    uid: 'client-uid',
    name: 'client',
    namespace: 'default',
    serviceAccount: 'client',
    netnsPath: '/proc/self/ns/net',
    cgroupPath: path.join(dir, 'cg', 'client'),
    ips: ['198.18.5.10'],
  });
  return agent;
}

/** Connects through the client pod's outbound listener as if the pod had dialed `VIP:9000`. */
function callVip(dp: FakeDatapath): Promise<string> {
  dp.originalDestination = { ip: VIP, port: 9000 };
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(dp.pods.get('client-uid')!.outboundPort, '127.0.0.1');
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
}


for (const mode of ['delta', 'sotw'] as const) {
  describe(`agent follows the control plane over ADS (${mode})`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nm-xds-${mode}-`));
    const cfg = path.join(dir, 'config');
    const servers: net.Server[] = [];
    const dp = new FakeDatapath();
    let cp: ControlPlaneHandle;
    let agent: Agent;

    before(async () => {
      fs.mkdirSync(cfg);
      fs.writeFileSync(path.join(cfg, 'service.yaml'), SERVICE);
      fs.writeFileSync(path.join(cfg, 'echo-1.yaml'), podYaml('echo-1', '127.0.0.2'));
      fs.writeFileSync(path.join(cfg, 'echo-2.yaml'), podYaml('echo-2', '127.0.0.3'));
      servers.push(await nameServer('127.0.0.2', 'echo-1'), await nameServer('127.0.0.3', 'echo-2'), await nameServer('127.0.0.4', 'echo-3'));
      cp = await startControlPlane({ config: cfg, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger() });
      agent = await agentWith(dir, dp, cp.address, mode);
    });
    after(async () => {
      await agent.shutdown();
      await cp.close();
      for (const s of servers) s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('routes a service VIP to its endpoints in turn', async () => {
      await waitFor('the VIP to be known', async () => agent.services.isVip(VIP, 9000));
      await waitFor('both endpoints', async () => agent.services.snapshot().clusters[0]?.endpoints.length === 2);
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await callVip(dp));
      assert.deepEqual([...answers].sort(), ['echo-1', 'echo-1', 'echo-2', 'echo-2']);
      assert.notEqual(answers[0], answers[1], 'round robin alternates');
      const metrics = (await unixRequest(agent.adminSocket, 'GET', '/metrics')).body;
      assert.match(metrics, /istio_tcp_connections_opened_total\{[^}]*destination_workload="echo-1"[^}]*destination_service="echo\.default\.svc\.cluster\.local"/);
    });

    it('follows a scale-up within a second, and fails over when an endpoint refuses', async () => {
      fs.writeFileSync(path.join(cfg, 'echo-3.yaml'), podYaml('echo-3', '127.0.0.4'));
      const t0 = Date.now();
      await waitFor('three endpoints', async () => agent.services.snapshot().clusters[0]?.endpoints.length === 3, 1000);
      assert.ok(Date.now() - t0 < 1000);
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await callVip(dp));
      assert.deepEqual([...seen].sort(), ['echo-1', 'echo-2', 'echo-3']);
      // an endpoint whose server is gone: every connection still succeeds through another endpoint
      servers[2]!.close();
      for (let i = 0; i < 6; i++) assert.notEqual(await callVip(dp), '');
      const metrics = (await unixRequest(agent.adminSocket, 'GET', '/metrics')).body;
      assert.match(metrics, /nodemesh_proxy_errors_total\{direction="outbound",reason="connect_failover"\} [1-9]/);
    });

    it('keeps routing with the last config while the control plane is down, and converges when it returns', async () => {
      fs.rmSync(path.join(cfg, 'echo-3.yaml'));
      await waitFor('back to two endpoints', async () => agent.services.snapshot().clusters[0]?.endpoints.length === 2);
      const address = cp.address;
      await cp.close();
      await waitFor('the agent to notice', async () => (agent.xdsStatus() as { connected: boolean }).connected === false);
      assert.match(await callVip(dp), /^echo-[12]$/);
      // back, with a changed config: only echo-2 remains
      fs.rmSync(path.join(cfg, 'echo-1.yaml'));
      cp = await startControlPlane({ config: cfg, xdsAddress: address, metricsPort: false, logger: silentLogger() });
      await waitFor('reconnect and converge', async () => {
        const c = agent.services.snapshot().clusters[0];
        return (agent.xdsStatus() as { connected: boolean }).connected && c?.endpoints.length === 1 && c.endpoints[0]!.ip === '127.0.0.3';
      }, 8000);
      assert.equal(await callVip(dp), 'echo-2');
    });
  });
}

for (const mode of ['delta', 'sotw'] as const) {
  describe(`an agent restarted while the control plane is down (${mode})`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nm-xds-saved-${mode}-`));
    const cfg = path.join(dir, 'config');
    const servers: net.Server[] = [];
    let cp: ControlPlaneHandle | null = null;
    let agent: Agent | null = null;

    before(async () => {
      fs.mkdirSync(cfg);
      fs.writeFileSync(path.join(cfg, 'service.yaml'), SERVICE);
      fs.writeFileSync(path.join(cfg, 'echo-1.yaml'), podYaml('echo-1', '127.0.0.2'));
      servers.push(await nameServer('127.0.0.2', 'echo-1'), await nameServer('127.0.0.3', 'echo-2'));
    });
    after(async () => {
      await agent?.shutdown();
      await cp?.close();
      for (const s of servers) s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('routes by the config its predecessor saved, and is ready without the control plane; the control plane back, it converges', async () => {
      cp = await startControlPlane({ config: cfg, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger() });
      const address = cp.address;
      const first = new FakeDatapath();
      agent = await agentWith(dir, first, address, mode);
      await waitFor('the first config', async () => agent!.services.snapshot().clusters[0]?.endpoints.length === 1);
      await agent.shutdown();
      const saved = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'xds.json'), 'utf8'));
      assert.equal(saved.node, 'node-t');
      assert.equal(fs.statSync(path.join(dir, 'state', 'xds.json')).mode & 0o777, 0o600, 'the saved config is root-only');
      await cp.close();
      cp = null;

      const dp = new FakeDatapath();
      agent = testAgent(dir, dp, { drainMs: 500, xds: { address, mode } });
      await agent.start();
      const ready = await unixRequest(agent.adminSocket, 'GET', '/healthz/ready');
      assert.equal(ready.status, 200, ready.body);
      const dump = JSON.parse((await unixRequest(agent.adminSocket, 'GET', '/config_dump')).body);
      assert.equal(dump.xds.connected, false);
      assert.equal(dump.xds.configSource, 'saved');
      assert.equal(dp.pods.size, 1, 'the pod of the previous run is served again');
      assert.equal(await callVip(dp), 'echo-1');

      fs.writeFileSync(path.join(cfg, 'echo-2.yaml'), podYaml('echo-2', '127.0.0.3'));
      fs.rmSync(path.join(cfg, 'echo-1.yaml'));
      cp = await startControlPlane({ config: cfg, xdsAddress: address, metricsPort: false, logger: silentLogger() });
      await waitFor('the change made while the agent was away', async () => {
        const c = agent!.services.snapshot().clusters[0];
        return c?.endpoints.length === 1 && c.endpoints[0]!.ip === '127.0.0.3';
      }, 8000);
      assert.equal((agent.xdsStatus() as { configSource: string }).configSource, 'control-plane');
      assert.equal(await callVip(dp), 'echo-2');
    });
  });
}

describe('agent NACKs what it cannot use and keeps its previous config', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-nack-'));
  const dp = new FakeDatapath();
  const server = new grpc.Server();
  const requests: DiscoveryRequest[] = [];
  let push: ((lb: string, version: string) => void) | null = null;
  let agent: Agent;

  before(async () => {
    server.addService(adsServiceDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => {
        let nonce = 0;
        push = (lb, version) =>
          call.write({
            version_info: version,
            type_url: CDS,
            nonce: String(++nonce),
            resources: [
              toAny(CLUSTER_TYPE, {
                name: 'outbound|9000||echo.default.svc.cluster.local',
                type: 'EDS',
                eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
                lb_policy: lb,
              }),
            ],
          });
        call.on('data', (r: DiscoveryRequest) => requests.push(r));
        call.on('error', () => undefined);
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    agent = await agentWith(dir, dp, `127.0.0.1:${port}`, 'sotw');
  });
  after(async () => {
    await agent.shutdown();
    server.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ACKs a usable cluster, NACKs CLUSTER_PROVIDED with error_detail, and keeps the ROUND_ROBIN cluster', async () => {
    await waitFor('the stream', async () => push !== null);
    push!('ROUND_ROBIN', 'v1');
    await waitFor('ACK of v1', async () => requests.find((r) => r.type_url === CDS && r.version_info === 'v1' && r.response_nonce === '1' && !r.error_detail));
    push!('CLUSTER_PROVIDED', 'v2');
    const nack = (await waitFor('NACK of v2', async () => requests.find((r) => r.type_url === CDS && r.response_nonce === '2')))!;
    assert.equal(nack.version_info, 'v1', 'a NACK names the version still in use');
    assert.match(nack.error_detail!.message, /lb_policy CLUSTER_PROVIDED is not supported \(ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, or load_balancing_policy\)/);
    const clusters = agent.services.snapshot().clusters;
    assert.equal(clusters.length, 1);
    assert.equal(clusters[0]!.lbPolicy, 'round_robin');
    const metrics = (await unixRequest(agent.adminSocket, 'GET', '/metrics')).body;
    assert.match(metrics, /nodemesh_xds_nacks_sent_total\{type="cds"\} 1/);
    const dump = JSON.parse((await unixRequest(agent.adminSocket, 'GET', '/config_dump')).body);
    assert.equal(dump.xds.versions.cds, 'v1');
    assert.match(dump.xds.lastNack.cds, /CLUSTER_PROVIDED/);
  });
});
