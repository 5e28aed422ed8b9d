// Unit: decoded Clusters share what they have in common: equal traffic policies are one frozen object (the
// default one for clusters without policy fields), and the host is the cluster name's when metadata agrees.
// Decoded endpoints read the same with or without app and version labels.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import { decodeResource } from '../../src/xds/agent-resources';
import { DEFAULT_CLUSTER_POLICY } from '../../src/xds/decode-cluster-policy';
import { toAny, toStruct } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE, EDS, ENDPOINT_TYPE } from '../../src/xds/resource-types';

function decode(fields: Record<string, unknown>, meta: Record<string, string> = {}, name = 'outbound|80||web.shop.svc.cluster.local'): ClusterInfo {
  const c = { name, type: 'EDS', eds_cluster_config: { service_name: name }, ...fields, metadata: { filter_metadata: { nodemesh: toStruct(meta) } } };
  const r = decodeResource(CDS, toAny(CLUSTER_TYPE, c)).resource;
  assert.equal(r.kind, 'cluster');
  return (r as { cluster: ClusterInfo }).cluster;
}

function frozenThrough(o: unknown): boolean {
  if (o === null || typeof o !== 'object') return true;
  return Object.isFrozen(o) && Object.values(o).every(frozenThrough);
}

const OUTLIER = {
  outlier_detection: { consecutive_5xx: { value: 3 }, interval: { seconds: 5 }, base_ejection_time: { seconds: 20 }, max_ejection_percent: { value: 50 }, enforcing_success_rate: { value: 0 } },
  circuit_breakers: { thresholds: [{ max_connections: { value: 10 }, max_retries: { value: 2 } }] },
  lb_policy: 'LEAST_REQUEST',
};

test('clusters without policy fields share one frozen default policy', () => {
  const a = decode({});
  const b = decode({ lb_policy: 'ROUND_ROBIN' }, {}, 'outbound|81||web.shop.svc.cluster.local');
  assert.equal(a.policy, DEFAULT_CLUSTER_POLICY);
  assert.equal(b.policy, DEFAULT_CLUSTER_POLICY);
  assert.deepEqual(a.policy, { lb: { kind: 'round_robin' } });
  assert.ok(frozenThrough(DEFAULT_CLUSTER_POLICY));
  assert.throws(() => {
    (a.policy!.lb as { kind: string }).kind = 'random';
  }, TypeError);
});

test('equal policies decode to one frozen object; different ones stay apart with their own values', () => {
  const a = decode(OUTLIER);
  const b = decode(OUTLIER, {}, 'outbound|80||other.shop.svc.cluster.local');
  assert.equal(a.policy, b.policy);
  assert.ok(frozenThrough(a.policy));
  assert.deepEqual(a.policy, {
    lb: { kind: 'least_request' },
    connectionPool: { maxConnections: 10, maxRetries: 2 },
    outlierDetection: { intervalMs: 5000, baseEjectionMs: 20_000, maxEjectionPercent: 50, consecutive5xxErrors: 3, minHealthPercent: 50 },
  });
  const c = decode({ ...OUTLIER, outlier_detection: { ...OUTLIER.outlier_detection, consecutive_5xx: { value: 4 } } });
  assert.notEqual(c.policy, a.policy);
  assert.equal(c.policy?.outlierDetection?.consecutive5xxErrors, 4);
  assert.equal(a.policy?.outlierDetection?.consecutive5xxErrors, 3);
  // Parameterless balancers are shared across policies too.
  assert.equal(decode({ lb_policy: 'RANDOM' }).policy?.lb, decode({ lb_policy: 'RANDOM', outlier_detection: OUTLIER.outlier_detection }).policy?.lb);
  assert.deepEqual(decode({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: 2048 } } }).policy?.lb, { kind: 'ring_hash', minRingSize: 2048 });
});

test("a cluster's host is its metadata's, and its name's when metadata says nothing", () => {
  assert.equal(decode({}, { host: 'web.shop.svc.cluster.local' }).host, 'web.shop.svc.cluster.local');
  assert.equal(decode({}, { host: 'alias.shop.svc.cluster.local' }).host, 'alias.shop.svc.cluster.local');
  assert.equal(decode({}).host, 'web.shop.svc.cluster.local');
  assert.equal(decode({}, {}, 'plain').host, 'plain');
  assert.equal(decode({}, { host: 'given.example' }, 'plain').host, 'given.example');
});

test('decoded endpoints read the same whether or not their pod has app and version labels', () => {
  const lbEndpoint = (address: string, port: number, meta: Record<string, string | boolean>) => ({
    endpoint: { address: { socket_address: { address, port_value: port } } },
    health_status: 'HEALTHY',
    metadata: { filter_metadata: { nodemesh: toStruct(meta) } },
  });
  const id = { pod: 'web-1', namespace: 'shop', serviceAccount: 'web', node: 'n1', inMesh: true };
  const cla = {
    cluster_name: 'outbound|80||web.shop.svc.cluster.local',
    endpoints: [{ lb_endpoints: [lbEndpoint('10.0.0.1', 15008, id), lbEndpoint('10.0.0.1', 8080, { ...id, app: 'web', version: 'v2' }), lbEndpoint('10.0.0.2', 8080, { ...id, version: 'v1' }), lbEndpoint('10.0.0.3', 8080, {})] }],
  };
  const r = decodeResource(EDS, toAny(ENDPOINT_TYPE, cla)).resource as { kind: string; endpoints: EndpointInfo[] };
  assert.equal(r.kind, 'endpoints');
  const read = (e: EndpointInfo) => [e.ip, e.port, e.pod, e.namespace, e.serviceAccount, e.app, e.version, e.node, e.inMesh, e.zone];
  assert.deepEqual(r.endpoints.map(read), [
    ['10.0.0.1', 15008, 'web-1', 'shop', 'web', undefined, undefined, 'n1', true, undefined],
    ['10.0.0.1', 8080, 'web-1', 'shop', 'web', 'web', 'v2', 'n1', true, undefined],
    ['10.0.0.2', 8080, 'web-1', 'shop', 'web', undefined, 'v1', 'n1', true, undefined],
    ['10.0.0.3', 8080, undefined, undefined, undefined, undefined, undefined, undefined, false, undefined],
  ]);
  // What /config_dump and the worker threads get: the same JSON and the same structured clone.
  assert.equal(JSON.stringify(r.endpoints[0]), '{"ip":"10.0.0.1","port":15008,"pod":"web-1","namespace":"shop","serviceAccount":"web","node":"n1","inMesh":true}');
  assert.deepEqual(structuredClone(r.endpoints).map(read), r.endpoints.map(read));
});
