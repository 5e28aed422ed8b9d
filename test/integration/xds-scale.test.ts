// 10,000 Services through the real control plane (file config, gRPC) to a real agent over delta xDS: the agent
// converges although the config is about twice the gRPC message limit, and a one-Service change then arrives
// as a push of that one resource. Speed and memory are measured in bench/xds-scale.js, not asserted here.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import type { Agent } from '../../src/agent/agent';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { silentLogger } from '../../src/telemetry/logger';
import { XDS_MAX_MESSAGE_BYTES } from '../../src/xds/limits';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { waitFor } from '../helpers/wait';

const SERVICES = 10_000;
const APPS = 1_000;
const PER_FILE = 500;
const NODES = ['node-t', 'node-a', 'node-b', 'node-c'];

function serviceYaml(i: number, targetPort = 8080): string {
  const http = i % 2 === 0;
  return `apiVersion: v1
kind: Service
metadata: { name: svc-${i}, namespace: ns-${i % 20} }
spec:
  clusterIP: 10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}
  selector: { app: app-${i % APPS} }
  ports: [{ name: ${http ? 'http' : 'tcp'}, port: 80, targetPort: ${targetPort}${http ? ', appProtocol: http' : ''} }]
`;
}

/** Two pods per app, in the namespace of the Services that select it (i % 20 is the same for i and i % APPS). */
function podYaml(j: number): string {
  const app = j >> 1;
  return `apiVersion: v1
kind: Pod
metadata: { name: app-${app}-${j & 1}, namespace: ns-${app % 20}, labels: { app: app-${app} } }
spec: { nodeName: ${NODES[j % NODES.length]}, serviceAccountName: sa, containers: [{ name: main, ports: [{ containerPort: 8080 }] }] }
status: { podIP: 10.64.${j >> 8}.${j & 255}, phase: Running }
`;
}

function writeServices(dir: string, file: number, change?: { index: number; targetPort: number }): void {
  const docs: string[] = [];
  for (let i = file * PER_FILE; i < (file + 1) * PER_FILE; i++) docs.push(serviceYaml(i, change?.index === i ? change.targetPort : 8080));
  fs.writeFileSync(path.join(dir, `services-${String(file).padStart(3, '0')}.yaml`), docs.join('---\n'));
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-xds-scale-'));
const cfg = path.join(dir, 'config');
const registry = new Registry();
let cp: ControlPlaneHandle;
let agent: Agent;

async function counter(name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((n, v) => n + Number(v.value), 0);
}

async function agentCounter(name: string): Promise<number> {
  const m = (await agent.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((n, v) => n + Number(v.value), 0);
}

async function pushes(type: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'nodemesh_xds_pushes_total');
  return Number(m?.values.find((v) => v.labels.type === type && v.labels.mode === 'delta')?.value ?? 0);
}

before(async () => {
  fs.mkdirSync(cfg, { recursive: true });
  const pods: string[] = [];
  for (let j = 0; j < APPS * 2; j++) pods.push(podYaml(j));
  fs.writeFileSync(path.join(cfg, 'pods.yaml'), pods.join('---\n'));
  for (let f = 0; f < SERVICES / PER_FILE; f++) writeServices(cfg, f);
  cp = await startControlPlane({ config: cfg, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger(), registry });
  agent = testAgent(dir, new FakeDatapath(), { xds: { address: cp.address, mode: 'delta' } });
  await agent.start();
});

after(async () => {
  await agent?.shutdown();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test(`${SERVICES} Services: an agent converges over delta xDS, then a one-Service change arrives alone`, async () => {
  // Ready means complete: the config comes in parts (split under the message limit), and the agent must not
  // call the first part of its listeners or clusters its config.
  const syncStart = Date.now();
  await waitFor('the agent to be ready', async () => agent.notReadyReason() === null, 50_000);
  // The saved config is written once the config is whole, not once per burst of responses while it arrives
  // (an incomplete one waits at most 5 s): each save rewrites the whole file.
  await waitFor('the config saved', async () => (await agentCounter('nodemesh_xds_config_saves_total')) > 0, 10_000);
  const saves = await agentCounter('nodemesh_xds_config_saves_total');
  assert.ok(saves <= 1 + Math.ceil((Date.now() - syncStart) / 5_000), `${saves} saves in ${Date.now() - syncStart} ms`);
  const snap = agent.services.snapshot();
  assert.equal(snap.vips.length, SERVICES);
  // Every Service port has its cluster with both endpoints; the agent's own part of the workload directory is there.
  assert.equal(snap.clusters.filter((c) => c.name.startsWith('outbound|')).length, SERVICES);
  assert.ok(snap.clusters.every((c) => c.endpoints.length > 0));
  assert.ok(agent.services.findWorkload('10.64.0.0'), 'a pod of node-t is known from the directory');
  assert.ok(agent.services.findWorkload('10.64.0.1'), 'a pod of another node is known from the directory');
  // The config is bigger than one message could carry: it came in responses packed under the limit.
  const sent = (await registry.getMetricsAsJSON()).find((x) => x.name === 'nodemesh_xds_response_bytes') as unknown as { values: { metricName?: string; labels: Record<string, string | number>; value: number }[] };
  const sum = sent.values.find((v) => v.metricName === 'nodemesh_xds_response_bytes_sum' && v.labels.mode === 'delta')!.value;
  const count = sent.values.find((v) => v.metricName === 'nodemesh_xds_response_bytes_count' && v.labels.mode === 'delta')!.value;
  assert.ok(sum > XDS_MAX_MESSAGE_BYTES, `${sum} bytes in ${count} responses`);
  assert.ok(sum / count < XDS_MAX_MESSAGE_BYTES);
  assert.equal(await counter('nodemesh_xds_withheld_total'), 0);

  // One Service's targetPort changes in its file: its endpoints reach the agent, and only they are pushed.
  const before = { cds: await pushes('cds'), eds: await pushes('eds'), lds: await pushes('lds'), rds: await pushes('rds') };
  const index = 7_777;
  const cluster = `outbound|80||svc-${index}.ns-${index % 20}.svc.cluster.local`;
  assert.ok(agent.services.endpointsOf(cluster).every((e) => e.port === 8080));
  writeServices(cfg, Math.floor(index / PER_FILE), { index, targetPort: 8081 });
  await waitFor('the changed endpoints at the agent', async () => agent.services.endpointsOf(cluster).length > 0 && agent.services.endpointsOf(cluster).every((e) => e.port === 8081), 30_000);
  assert.equal(await pushes('eds'), before.eds + 1);
  assert.deepEqual([await pushes('cds'), await pushes('lds'), await pushes('rds')], [before.cds, before.lds, before.rds]);
  // The rest is as it was.
  assert.ok(agent.services.endpointsOf(`outbound|80||svc-${index + 1}.ns-${(index + 1) % 20}.svc.cluster.local`).every((e) => e.port === 8080));
  assert.equal(agent.services.snapshot().vips.length, SERVICES);
});
