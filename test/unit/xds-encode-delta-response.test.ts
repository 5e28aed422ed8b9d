// Unit: a DeltaDiscoveryResponse written directly (src/xds/encode-delta-response.ts) is byte for byte what
// protobufjs' fromObject + encode writes, and what it does not cover is left to protobufjs whole.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeDeltaResponse } from '../../src/xds/encode-delta-response';
import { adsServiceDefinition, anyOf, messageType, toAny } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE } from '../../src/xds/resource-types';

const type = messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
const protobufjs = (m: Record<string, unknown>): Buffer => Buffer.from(type.encode(type.fromObject(m)).finish());

function resource(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: `outbound|80||svc-${i}.ns-${i % 7}.svc.cluster.local`, version: `v${i}`, resource: toAny(CLUSTER_TYPE, { name: `c${i}`, connect_timeout: { seconds: i } }), ...extra };
}

test('byte for byte what protobufjs writes, for the responses the control plane sends', () => {
  const big = { system_version_info: '7', type_url: CDS, nonce: '12', removed_resources: ['a', 'b'], resources: Array.from({ length: 300 }, (_, i) => resource(i)), control_plane: { identifier: 'cp-1' } };
  const cases: Record<string, unknown>[] = [
    big,
    { type_url: CDS, nonce: '1', resources: [] },
    { system_version_info: '', type_url: CDS, nonce: '', resources: [{ name: '', version: '', resource: { type_url: '', value: Buffer.alloc(0) } }] },
    // A value large enough for a three-byte length, and a view into a larger buffer.
    { type_url: CDS, nonce: '2', resources: [{ name: 'n', version: '1', resource: { type_url: `type.googleapis.com/${CLUSTER_TYPE}`, value: Buffer.alloc(70_000, 1).subarray(5, 69_000) } }] },
    // Empty aliases are written as nothing by both.
    { type_url: CDS, nonce: '3', resources: [resource(1, { aliases: [] })] },
  ];
  for (const m of cases) assert.ok(encodeDeltaResponse(type, m).equals(protobufjs(m)), JSON.stringify(m).slice(0, 120));
});

test('what it does not cover is encoded by protobufjs whole: other resource fields, non-ASCII strings, @type Anys', () => {
  const cases: Record<string, unknown>[] = [
    { type_url: CDS, nonce: '1', resources: [resource(1), resource(2, { aliases: ['x'] })] },
    { type_url: CDS, nonce: '1', resources: [resource(1, { ttl: { seconds: 5 } })] },
    { type_url: CDS, nonce: '1', resources: [resource(1, { name: 'grüße' })] },
    { system_version_info: 'ü', type_url: CDS, nonce: '1', resources: [resource(1)] },
    { type_url: CDS, nonce: '1', resources: [{ name: 'n', version: '1', resource: anyOf(CLUSTER_TYPE, { name: 'n' }) }] },
  ];
  for (const m of cases) assert.ok(encodeDeltaResponse(type, m).equals(protobufjs(m)), JSON.stringify(m).slice(0, 120));
});

test('the ADS service definition serializes delta responses with it, and they decode as sent', () => {
  const def = adsServiceDefinition().DeltaAggregatedResources!;
  const m = { system_version_info: '1', type_url: CDS, nonce: '4', removed_resources: ['gone'], resources: [resource(1), resource(2)] };
  const bytes = def.responseSerialize(m);
  assert.ok(bytes.equals(protobufjs(m)));
  const back = def.responseDeserialize(bytes) as { resources: { name: string; version: string; resource: { value: Uint8Array } }[] };
  assert.deepEqual(
    back.resources.map((r) => [r.name, r.version, Buffer.from(r.resource.value).toString('hex')]),
    m.resources.map((r) => [r.name, r.version, Buffer.from((r.resource as { value: Uint8Array }).value).toString('hex')]),
  );
});
