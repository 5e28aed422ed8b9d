// Turns xDS resources into the agent's state types (the one place wire types become domain types), validating.

import { NodemeshError } from '../util/errors';
import type { ClusterInfo, EndpointInfo, VipInfo } from '../state/services';
import { decodeAny, fromStruct } from './protos';
import { CDS, EDS, LDS, METADATA_NAMESPACE, parseOutboundClusterName, RDS, TCP_PROXY_TYPE, TYPE_URL_PREFIX } from './resource-types';

/** A resource the agent cannot use; its message becomes the NACK's error_detail. */
export class XdsResourceError extends NodemeshError {
  constructor(message: string) {
    super('NM_XDS_REJECTED', message);
  }
}

/** What one decoded resource contributes to agent state. */
export type AgentResource =
  | { kind: 'cluster'; cluster: ClusterInfo; eds: boolean }
  | { kind: 'endpoints'; cluster: string; endpoints: EndpointInfo[] }
  | { kind: 'vip'; vip: VipInfo }
  | { kind: 'inbound'; node: string; workloads: { pod: string; namespace: string; ip: string }[] }
  | { kind: 'ignored'; why: string };

interface Any {
  type_url: string;
  value: Uint8Array;
}

type Msg = Record<string, unknown>;

function durationMs(d: unknown, fallback: number): number {
  if (!d || typeof d !== 'object') return fallback;
  const { seconds, nanos } = d as { seconds?: string | number; nanos?: number };
  return Number(seconds ?? 0) * 1000 + Math.round((nanos ?? 0) / 1e6);
}

function nodemeshMeta(m: unknown): Record<string, unknown> {
  const fm = (m as { filter_metadata?: Record<string, unknown> } | null | undefined)?.filter_metadata;
  const s = fm?.[METADATA_NAMESPACE];
  return s ? fromStruct(s) : {};
}

const SUPPORTED_LB: Record<string, ClusterInfo['lbPolicy']> = { ROUND_ROBIN: 'round_robin' };

function decodeCluster(c: Msg): AgentResource {
  const name = String(c.name ?? '');
  const type = String(c.type ?? 'STATIC');
  const lb = String(c.lb_policy ?? 'ROUND_ROBIN');
  if (type === 'ORIGINAL_DST') {
    return { kind: 'ignored', why: 'original-destination clusters need no state: the agent always forwards to the original destination' };
  }
  if (type !== 'EDS') throw new XdsResourceError(`cluster ${name}: discovery type ${type} is not supported (supported: EDS)`);
  const policy = SUPPORTED_LB[lb];
  if (!policy) throw new XdsResourceError(`cluster ${name}: lb_policy ${lb} is not supported (supported: ${Object.keys(SUPPORTED_LB).join(', ')})`);
  const meta = nodemeshMeta(c.metadata);
  const host = typeof meta.host === 'string' ? meta.host : (parseOutboundClusterName(name)?.host ?? name);
  return { kind: 'cluster', eds: true, cluster: { name, host, lbPolicy: policy, connectTimeoutMs: durationMs(c.connect_timeout, 10_000) } };
}

function decodeLoadAssignment(cla: Msg): AgentResource {
  const cluster = String(cla.cluster_name ?? '');
  const endpoints: EndpointInfo[] = [];
  for (const loc of (cla.endpoints as Msg[] | undefined) ?? []) {
    for (const lb of (loc.lb_endpoints as Msg[] | undefined) ?? []) {
      const health = String(lb.health_status ?? 'UNKNOWN');
      if (health !== 'HEALTHY' && health !== 'UNKNOWN') continue;
      const sa = ((lb.endpoint as Msg | undefined)?.address as Msg | undefined)?.socket_address as Msg | undefined;
      if (!sa || typeof sa.address !== 'string' || !sa.address) {
        throw new XdsResourceError(`ClusterLoadAssignment ${cluster}: endpoint without a socket address (only socket addresses are supported)`);
      }
      const port = Number(sa.port_value ?? 0);
      if (!(port > 0 && port < 65536)) throw new XdsResourceError(`ClusterLoadAssignment ${cluster}: endpoint ${sa.address} has invalid port ${sa.port_value}`);
      const m = nodemeshMeta(lb.metadata);
      endpoints.push({
        ip: sa.address,
        port,
        pod: typeof m.pod === 'string' ? m.pod : undefined,
        namespace: typeof m.namespace === 'string' ? m.namespace : undefined,
        serviceAccount: typeof m.serviceAccount === 'string' ? m.serviceAccount : undefined,
        node: typeof m.node === 'string' ? m.node : undefined,
        inMesh: m.inMesh === true,
      });
    }
  }
  return { kind: 'endpoints', cluster, endpoints };
}

function decodeListener(l: Msg): AgentResource {
  const name = String(l.name ?? '');
  if (l.api_listener) return { kind: 'ignored', why: 'API listener (for proxyless clients)' };
  const direction = String(l.traffic_direction ?? 'UNSPECIFIED');
  if (direction === 'INBOUND') {
    const meta = nodemeshMeta(l.metadata);
    const workloads = ((l.filter_chains as Msg[] | undefined) ?? []).map((fc) => {
      const m = nodemeshMeta(fc.metadata);
      return { pod: String(m.pod ?? ''), namespace: String(m.namespace ?? ''), ip: String(m.ip ?? '') };
    });
    return { kind: 'inbound', node: String(meta.node ?? ''), workloads };
  }
  const sa = (l.address as Msg | undefined)?.socket_address as Msg | undefined;
  if (!sa || typeof sa.address !== 'string') throw new XdsResourceError(`listener ${name}: no socket address (outbound listeners must name VIP:port)`);
  const chains = (l.filter_chains as Msg[] | undefined) ?? [];
  const filters = (chains[0]?.filters as Msg[] | undefined) ?? [];
  const tcp = filters.find((f) => (f.typed_config as Any | undefined)?.type_url === TYPE_URL_PREFIX + TCP_PROXY_TYPE);
  if (!tcp) throw new XdsResourceError(`listener ${name}: needs a tcp_proxy filter (only L4 outbound listeners are supported so far)`);
  const proxy = decodeAny<Msg>(tcp.typed_config as Any);
  const cluster = typeof proxy.cluster === 'string' ? proxy.cluster : '';
  if (!cluster) throw new XdsResourceError(`listener ${name}: tcp_proxy without a cluster (weighted_clusters are not supported)`);
  return { kind: 'vip', vip: { vip: sa.address, port: Number(sa.port_value ?? 0), cluster } };
}

/** Decodes one resource of `typeUrl` with its name; throws XdsResourceError for anything the agent cannot honour. */
export function decodeResource(typeUrl: string, any: Any): { name: string; resource: AgentResource } {
  if (any.type_url !== typeUrl) throw new XdsResourceError(`resource of type ${any.type_url} delivered as ${typeUrl}`);
  let msg: Msg;
  try {
    msg = decodeAny<Msg>(any);
  } catch (e) {
    throw new XdsResourceError(`cannot decode ${typeUrl}: ${(e as Error).message}`);
  }
  const name = String(typeUrl === EDS ? (msg.cluster_name ?? '') : (msg.name ?? ''));
  if (!name) throw new XdsResourceError(`${typeUrl.slice(TYPE_URL_PREFIX.length)} without a name`);
  switch (typeUrl) {
    case CDS:
      return { name, resource: decodeCluster(msg) };
    case EDS:
      return { name, resource: decodeLoadAssignment(msg) };
    case LDS:
      return { name, resource: decodeListener(msg) };
    case RDS:
      return { name, resource: { kind: 'ignored', why: 'routes are used by L7, which the agent does not run yet' } };
    default:
      throw new XdsResourceError(`unsupported resource type ${typeUrl}`);
  }
}
