// ADS over a raw grpc-js client: state of the world and delta, versions, nonces, ACK/NACK, live file changes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { decodeAny, fromStruct, toStruct, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../src/xds/protos';
import { CDS, EDS, LDS, RDS } from '../../src/xds/resource-types';
import { silentLogger } from '../../src/telemetry/logger';
import { rawAdsClient, RawAdsStream, type RawAdsClient } from '../helpers/raw-ads';

const HOST = 'echo.default.svc.cluster.local';
const CLUSTER = `outbound|80||${HOST}`;

function pod(name: string, ip: string, node: string, extra = ''): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: { app: echo }${extra} }
spec:
  nodeName: ${node}
  serviceAccountName: echo-sa
  containers: [{ name: echo, ports: [{ name: http, containerPort: 8080 }] }]
status: { podIP: ${ip} }
`;
}

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  clusterIP: 198.18.200.10
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

let dir: string;
let cp: ControlPlaneHandle;
let client: RawAdsClient;

function node(id: string, nodeName: string): object {
  return { id, cluster: 'nodemesh', metadata: toStruct({ NODE_NAME: nodeName }) };
}

function names(res: DiscoveryResponse | DeltaDiscoveryResponse): string[] {
  if ('version_info' in res) return res.resources.map((r) => String(decodeAny<{ name?: string; cluster_name?: string }>(r).name ?? decodeAny<{ cluster_name: string }>(r).cluster_name)).sort();
  return res.resources.map((r) => r.name).sort();
}

async function metric(name: string): Promise<string[]> {
  const text = await fetch(`http://127.0.0.1:${cp.metricsPort}/metrics`).then((r) => r.text());
  return text.split('\n').filter((l) => l.startsWith(name));
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cp-ads-'));
  fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE);
  fs.writeFileSync(path.join(dir, 'pods.yaml'), pod('echo-a', '10.0.0.1', 'n1') + '---\n' + pod('echo-b', '10.0.0.2', 'n2'));
  cp = await startControlPlane({ config: dir, xdsAddress: '127.0.0.1:0', metricsPort: 0, logger: silentLogger() });
  client = rawAdsClient(cp.address);
});

after(async () => {
  client?.close();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('state of the world: wildcard and named subscriptions, ACK, NACK, live edit and delete', async () => {
  const s = new RawAdsStream(client.StreamAggregatedResources());
  try {
    s.send({ node: node('agent-n1', 'n1'), type_url: CDS, resource_names: [] });
    const cds = await s.next();
    assert.equal(cds.type_url, CDS);
    assert.deepEqual(names(cds), ['InboundPassthroughCluster', 'nodemesh-workloads|n1', 'nodemesh-workloads|n2', CLUSTER]);
    assert.ok(cds.version_info && cds.nonce);
    const cluster = decodeAny<Record<string, unknown>>(cds.resources.find((r) => decodeAny<{ name: string }>(r).name === CLUSTER)!);
    assert.equal(cluster.type, 'EDS');
    assert.equal(cluster.lb_policy, 'ROUND_ROBIN');
    s.send({ type_url: CDS, resource_names: [], version_info: cds.version_info, response_nonce: cds.nonce });
    await s.quiet(100);

    s.send({ type_url: LDS, resource_names: [] });
    const lds = await s.next();
    assert.deepEqual(names(lds), [`${HOST}:80`, 'inbound|n1', 'vip|198.18.200.10:80']);
    const inbound = decodeAny<{ filter_chains: { filter_chain_match: { prefix_ranges: { address_prefix: string }[] }; metadata: { filter_metadata: Record<string, unknown> } }[] }>(
      lds.resources.find((r) => decodeAny<{ name: string }>(r).name === 'inbound|n1')!,
    );
    assert.equal(inbound.filter_chains.length, 1);
    assert.equal(inbound.filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix, '10.0.0.1');
    assert.deepEqual(fromStruct(inbound.filter_chains[0].metadata.filter_metadata.nodemesh), {
      pod: 'echo-a',
      namespace: 'default',
      serviceAccount: 'echo-sa',
      uid: 'default/echo-a',
      node: 'n1',
      ip: '10.0.0.1',
      mtlsMode: 'PERMISSIVE',
      policies: [],
    });
    // NACK the listeners: logged, counted, nothing resent.
    s.send({ type_url: LDS, resource_names: [], version_info: '', response_nonce: lds.nonce, error_detail: { code: 3, message: 'listener unusable' } });
    await s.quiet(100);
    assert.deepEqual(await metric('nodemesh_xds_nacks_total{type="lds"}'), ['nodemesh_xds_nacks_total{type="lds"} 1']);

    s.send({ type_url: EDS, resource_names: [CLUSTER] });
    const eds = await s.next();
    const cla = decodeAny<{ cluster_name: string; endpoints: { locality: { zone: string }; lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; metadata: { filter_metadata: Record<string, unknown> } }[] }[] }>(eds.resources[0]);
    assert.equal(cla.cluster_name, CLUSTER);
    assert.deepEqual(
      cla.endpoints.map((l) => [l.locality.zone, l.lb_endpoints[0].endpoint.address.socket_address.address, l.lb_endpoints[0].endpoint.address.socket_address.port_value]),
      [
        ['n1', '10.0.0.1', 8080],
        ['n2', '10.0.0.2', 8080],
      ],
    );
    assert.deepEqual(fromStruct(cla.endpoints[1].lb_endpoints[0].metadata.filter_metadata.nodemesh), {
      pod: 'echo-b',
      namespace: 'default',
      serviceAccount: 'echo-sa',
      node: 'n2',
      inMesh: true,
      app: 'echo',
    });
    s.send({ type_url: EDS, resource_names: [CLUSTER], version_info: eds.version_info, response_nonce: eds.nonce });
    s.send({ type_url: RDS, resource_names: [`${HOST}:80`] });
    const rds = await s.next();
    assert.deepEqual(names(rds), [`${HOST}:80`]);
    s.send({ type_url: RDS, resource_names: [`${HOST}:80`], version_info: rds.version_info, response_nonce: rds.nonce });
    await s.quiet(100);

    // Live edit: echo-b leaves; the endpoints change for this node, and n2's part of the workload directory
    // goes (n2 has no in-mesh pod left), pushed within a second.
    const t0 = Date.now();
    fs.writeFileSync(path.join(dir, 'pods.yaml'), pod('echo-a', '10.0.0.1', 'n1'));
    const cds1 = await s.next(1000);
    assert.equal(cds1.type_url, CDS);
    assert.deepEqual(names(cds1), ['InboundPassthroughCluster', 'nodemesh-workloads|n1', CLUSTER]);
    s.send({ type_url: CDS, resource_names: [], version_info: cds1.version_info, response_nonce: cds1.nonce });
    const eds2 = await s.next(1000);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(eds2.type_url, EDS);
    assert.notEqual(eds2.version_info, eds.version_info);
    assert.equal(decodeAny<{ endpoints: unknown[] }>(eds2.resources[0]).endpoints.length, 1);
    s.send({ type_url: EDS, resource_names: [CLUSTER], version_info: eds2.version_info, response_nonce: eds2.nonce });
    await s.quiet(150);

    // Live delete: the Service file goes; CDS and LDS come back without it.
    fs.rmSync(path.join(dir, 'service.yaml'));
    const got = [await s.next(1000), await s.next(1000)];
    const cds2 = got.find((r) => r.type_url === CDS)!;
    const lds2 = got.find((r) => r.type_url === LDS)!;
    assert.deepEqual(names(cds2), ['InboundPassthroughCluster', 'nodemesh-workloads|n1']);
    assert.deepEqual(names(lds2), ['inbound|n1']);
    fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE);
    await s.next(1000); // CDS back (later responses drain with the stream)
  } finally {
    s.close();
  }
});

test('delta: versions per resource, initial_resource_versions, removed_resources, NACK counted', async () => {
  fs.writeFileSync(path.join(dir, 'pods.yaml'), pod('echo-a', '10.0.0.1', 'n1') + '---\n' + pod('echo-b', '10.0.0.2', 'n2'));
  await new Promise((r) => setTimeout(r, 300));
  const d = new RawAdsStream(client.DeltaAggregatedResources());
  try {
    d.send({ node: node('agent-n2', 'n2'), type_url: CDS, resource_names_subscribe: ['*'] });
    const cds = await d.next();
    assert.deepEqual(names(cds), ['InboundPassthroughCluster', 'nodemesh-workloads|n1', 'nodemesh-workloads|n2', CLUSTER]);
    assert.ok(cds.resources.every((r) => /^[0-9a-f]{16}$/.test(r.version)));
    assert.deepEqual(cds.removed_resources, []);
    d.send({ type_url: CDS, response_nonce: cds.nonce });

    // The client already has the cluster at this version: only what differs is sent.
    const clusterVersion = cds.resources.find((r) => r.name === CLUSTER)!.version;
    const d2 = new RawAdsStream(client.DeltaAggregatedResources());
    d2.send({ node: node('agent-n2b', 'n2'), type_url: CDS, resource_names_subscribe: ['*'], initial_resource_versions: { [CLUSTER]: clusterVersion, gone: 'x' } });
    const resumed = await d2.next();
    assert.deepEqual(names(resumed), ['InboundPassthroughCluster', 'nodemesh-workloads|n1', 'nodemesh-workloads|n2']);
    assert.deepEqual(resumed.removed_resources, ['gone']);
    d2.close();

    d.send({ type_url: EDS, resource_names_subscribe: [CLUSTER, 'outbound|1||missing.default.svc.cluster.local'] });
    const eds = await d.next();
    assert.deepEqual(names(eds), [CLUSTER]);
    assert.deepEqual(eds.removed_resources, ['outbound|1||missing.default.svc.cluster.local']);
    d.send({ type_url: EDS, response_nonce: eds.nonce });
    d.send({ type_url: LDS, resource_names_subscribe: [] });
    const lds = await d.next();
    assert.deepEqual(names(lds), [`${HOST}:80`, 'inbound|n2', 'vip|198.18.200.10:80']);
    const nacksBefore = (await metric('nodemesh_xds_nacks_total{type="lds"}'))[0];
    d.send({ type_url: LDS, response_nonce: lds.nonce, error_detail: { code: 3, message: 'inbound listener unusable' } });
    await d.quiet(100);
    assert.deepEqual(await metric('nodemesh_xds_nacks_total{type="lds"}'), [nacksBefore.replace(/\d+$/, (n) => String(Number(n) + 1))]);

    // echo-b (on n2) leaves: this node's inbound listener and n2's part of the directory are removed, and the
    // endpoints change.
    fs.writeFileSync(path.join(dir, 'pods.yaml'), pod('echo-a', '10.0.0.1', 'n1'));
    const got = [await d.next(1000), await d.next(1000), await d.next(1000)];
    const cds2 = got.find((r) => r.type_url === CDS)!;
    assert.deepEqual([cds2.resources, cds2.removed_resources], [[], ['nodemesh-workloads|n2']]);
    d.send({ type_url: CDS, response_nonce: cds2.nonce });
    const eds2 = got.find((r) => r.type_url === EDS)!;
    const lds2 = got.find((r) => r.type_url === LDS)!;
    assert.deepEqual(names(eds2), [CLUSTER]);
    assert.notEqual(eds2.resources[0].version, eds.resources[0].version);
    assert.deepEqual(lds2.resources, []);
    assert.deepEqual(lds2.removed_resources, ['inbound|n2']);
    d.send({ type_url: EDS, response_nonce: eds2.nonce });
    d.send({ type_url: LDS, response_nonce: lds2.nonce });

    // Unsubscribing is silent; the Service file deleted: the remaining subscriptions report removals.
    d.send({ type_url: EDS, resource_names_unsubscribe: [CLUSTER] });
    await d.quiet(100);
    fs.rmSync(path.join(dir, 'service.yaml'));
    const rm = [await d.next(1000), await d.next(1000)];
    assert.deepEqual(rm.find((r) => r.type_url === CDS)!.removed_resources, [CLUSTER]);
    assert.deepEqual(rm.find((r) => r.type_url === LDS)!.removed_resources.sort(), [`${HOST}:80`, 'vip|198.18.200.10:80']);
    await d.quiet(150);
  } finally {
    d.close();
  }
  const connected = await metric('nodemesh_xds_connected_clients');
  assert.ok(connected.length > 0);
  assert.ok((await metric('nodemesh_xds_pushes_total{type="eds",mode="delta"}'))[0].endsWith(' 2'));
});

test('/debug/config shows objects, resources with versions and streams; gRPC health is SERVING', async () => {
  const dbg = (await fetch(`http://127.0.0.1:${cp.metricsPort}/debug/config`).then((r) => r.json())) as {
    objects: { key: string }[];
    resources: Record<string, { name: string; version: string }[]>;
  };
  assert.ok(dbg.objects.some((o) => o.key === 'Pod/default/echo-a'));
  assert.ok(Array.isArray(dbg.resources.cds));
  const Health = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');
  const h = new Health(cp.address, grpc.credentials.createInsecure()) as unknown as { Check(req: object, cb: (e: Error | null, r: { status: string }) => void): void; close(): void };
  const status = await new Promise<{ status: string }>((resolve, reject) => h.Check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r))));
  h.close();
  assert.equal(status.status, 'SERVING');
});

test('an invalid edit in the watched directory is counted and pushes nothing: the last good config keeps being served', async () => {
  fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE);
  await new Promise((r) => setTimeout(r, 300));
  const s = new RawAdsStream(client.StreamAggregatedResources());
  try {
    s.send({ node: node('agent-bad', 'n1'), type_url: CDS, resource_names: [] });
    const cds = await s.next();
    assert.ok(names(cds).includes(CLUSTER));
    s.send({ type_url: CDS, resource_names: [], version_info: cds.version_info, response_nonce: cds.nonce });
    const before = (await metric('nodemesh_config_errors_total{reason="invalid"}'))[0];
    fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE.replace('port: 80,', 'port: 0,'));
    await s.quiet(400);
    assert.deepEqual(await metric('nodemesh_config_errors_total{reason="invalid"}'), [before.replace(/\d+$/, (n) => String(Number(n) + 1))]);
    const dbg = (await fetch(`http://127.0.0.1:${cp.metricsPort}/debug/config`).then((r) => r.json())) as { issues: Record<string, { line: number; field: string }[]> };
    assert.deepEqual(
      Object.values(dbg.issues).flat().map((i) => `${i.line}:${i.field}`),
      ['7:spec.ports[0].port'],
    );
  } finally {
    s.close();
  }
});
