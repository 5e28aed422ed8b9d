// Fuzz target xds-resources: the agent's xDS resource decoding, decodeResource(typeUrl, any), the one place
// wire resources become agent state (src/xds/agent-resources.ts and the per-type decoders behind it).
// Seeds are real resources the control plane's translator produced.
//
// Invariant:
// - decodeResource throws nothing but XdsResourceError (its message becomes the NACK's error_detail, so it must
//   say what is wrong rather than leak a decoder's internals);
// - what it accepts is state the agent can use: a non-empty name; a cluster's connect timeout a number of
//   milliseconds a timer can hold (0 to 2^31 - 1); endpoints and VIPs at an IP address with a port 1-65535; inbound
//   workloads at IP addresses; and compiled policies that authorize() can evaluate without throwing.

import net from 'node:net';
import { decodeResource, XdsResourceError, type AgentResource } from '../../../src/xds/agent-resources';
import { authorize } from '../../../src/state/authz';
import { CDS, EDS, LDS, RDS, TYPE_URL_PREFIX } from '../../../src/xds/resource-types';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const TYPES = [CDS, EDS, LDS, RDS];
const port = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;

function checkResource(r: AgentResource): void {
  switch (r.kind) {
    case 'cluster':
      check(Number.isFinite(r.cluster.connectTimeoutMs) && r.cluster.connectTimeoutMs >= 0 && r.cluster.connectTimeoutMs <= 2 ** 31 - 1, `cluster ${r.cluster.name}: connect timeout ${r.cluster.connectTimeoutMs} ms accepted`);
      break;
    case 'endpoints':
      for (const e of r.endpoints) check(net.isIP(e.ip) !== 0 && port(e.port), `endpoint ${e.ip}:${e.port} accepted`);
      break;
    case 'vip':
      check(net.isIP(r.vip.vip) !== 0 && port(r.vip.port), `VIP ${r.vip.vip}:${r.vip.port} accepted`);
      break;
    case 'inbound':
      for (const w of r.workloads) check(net.isIP(w.ip) !== 0, `inbound workload at ${JSON.stringify(w.ip)} accepted`);
      for (const policy of r.policies.values()) {
        for (const principal of [null, 'spiffe://cluster.local/ns/default/sa/client']) {
          authorize(policy, { principal, sourceIp: '198.18.0.7', destinationPort: 8080 });
          authorize(policy, { principal, sourceIp: 'fd00::7', destinationPort: 1 });
        }
      }
      break;
    default:
      break;
  }
}

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const choice = input.byte();
  // Mostly the four ADS types; now and then a mismatched or foreign type URL.
  const typeUrl = choice < 250 ? TYPES[choice % 4]! : choice === 250 ? `${TYPE_URL_PREFIX}google.protobuf.Struct` : TYPES[choice % 4]! + 'x';
  const declared = choice === 255 ? CDS : typeUrl;
  let decoded;
  try {
    decoded = decodeResource(declared, { type_url: typeUrl, value: input.rest() });
  } catch (e) {
    if (e instanceof XdsResourceError) return;
    throw e;
  }
  check(decoded.name.length > 0, 'a resource without a name was accepted');
  checkResource(decoded.resource);
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 16384,
  dict: [
    'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
    'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    'nodemesh',
    'spiffe://[^/]+/ns/',
    '/sa/[^/]+',
    '[^/]*',
    'STRICT',
    'PERMISSIVE',
  ],
  run,
};
