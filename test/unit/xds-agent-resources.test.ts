// Unit: the agent's decoding of xDS resources refuses (NACKs, naming the resource) what it cannot use,
// whichever decoder the fault is in: cases the xds-resources fuzz target found.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeResource, XdsResourceError } from '../../src/xds/agent-resources';
import { anyOf, toAny, toStruct } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE, EDS, ENDPOINT_TYPE, LDS, LISTENER_TYPE, RBAC_TYPE, TCP_PROXY_TYPE, TYPE_URL_PREFIX } from '../../src/xds/resource-types';

// A tag with no field after it: protobufjs throws "index out of range".
const BAD_BYTES = { type_url: '', value: Buffer.from([0x0f]) };

function vipListener(port: number, address = '10.96.0.10', typedConfig: unknown = anyOf(TCP_PROXY_TYPE, { stat_prefix: 'c', cluster: 'c' })): Record<string, unknown> {
  return {
    name: `vip|${address}:${port}`,
    address: { socket_address: { address, port_value: port } },
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ name: 'c', filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: typedConfig }] }],
  };
}

function rejects(typeUrl: string, typeName: string, message: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(
    () => decodeResource(typeUrl, toAny(typeName, message)),
    (e: unknown) => e instanceof XdsResourceError && pattern.test(e.message),
  );
}

test('a nested typed_config with bad bytes is NACKed by the resource name, not with protobufjs internals', () => {
  // The fuzzer's input: an inbound listener whose RBAC filter's bytes were cut; decodeAny's RangeError
  // ("index out of range: 228 + 112 > 263") escaped decodeResource.
  rejects(LDS, LISTENER_TYPE, vipListener(80, '10.96.0.10', { ...BAD_BYTES, type_url: TYPE_URL_PREFIX + TCP_PROXY_TYPE }), /^listener vip\|10\.96\.0\.10:80: .*index out of range/i);
  const inbound = {
    name: 'inbound|n1',
    traffic_direction: 'INBOUND',
    metadata: { filter_metadata: { nodemesh: toStruct({ node: 'n1' }) } },
    filter_chains: [{ name: 'web', metadata: { filter_metadata: { nodemesh: toStruct({ pod: 'web', namespace: 'shop', ip: '198.19.1.10' }) } }, filters: [{ name: 'rbac', typed_config: { ...BAD_BYTES, type_url: TYPE_URL_PREFIX + RBAC_TYPE } }] }],
  };
  rejects(LDS, LISTENER_TYPE, inbound, /^listener inbound\|n1.*: .*index out of range/i);
});

test('addresses that are not IP literals, ports outside 1-65535 and unusable connect timeouts are NACKed', () => {
  rejects(LDS, LISTENER_TYPE, vipListener(0), /vip\|10\.96\.0\.10:0: 10\.96\.0\.10:0 is not an IP address and port/);
  rejects(LDS, LISTENER_TYPE, vipListener(80, 'web.shop'), /web\.shop:80 is not an IP address/);
  const cla = (address: string) => ({ cluster_name: 'outbound|80||web.shop.svc.cluster.local', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: 8080 } } } }] }] });
  // The fuzzer's input had 839.19.1.14 where the translator wrote 198.19.1.14.
  rejects(EDS, ENDPOINT_TYPE, cla('839.19.1.14'), /endpoint 839\.19\.1\.14:8080 is not an IP address and port/);
  assert.equal(decodeResource(EDS, toAny(ENDPOINT_TYPE, cla('fd00::14'))).resource.kind, 'endpoints');
  const cluster = (seconds: number) => ({ name: 'outbound|80||web.shop.svc.cluster.local', type: 'EDS', eds_cluster_config: { service_name: 'x' }, connect_timeout: { seconds } });
  rejects(CDS, CLUSTER_TYPE, cluster(-5), /connect_timeout of -5000 ms is not a usable duration/);
  rejects(CDS, CLUSTER_TYPE, cluster(30 * 86400), /connect_timeout of 2592000000 ms/);
  assert.equal(decodeResource(CDS, toAny(CLUSTER_TYPE, cluster(5))).resource.kind, 'cluster');
  const inbound = { name: 'inbound|n1', traffic_direction: 'INBOUND', filter_chains: [{ name: 'web', metadata: { filter_metadata: { nodemesh: toStruct({ pod: 'web', namespace: 'shop', ip: 'web' }) } } }] };
  rejects(LDS, LISTENER_TYPE, inbound, /pod shop\/web has the IP "web"/);
});
