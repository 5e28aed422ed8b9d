// Turns xDS resources into the agent's state types: the one place wire types become domain types. This file
// dispatches by type; the decoders live beside it (decode-clusters, decode-listeners, decode-inbound,
// decode-routes) and refuse, with an XdsResourceError naming the field, anything the agent cannot honour.

import type { InboundPolicy } from '../state/authz';
import type { RouteTable } from '../state/routes';
import type { ClusterInfo, EndpointInfo, VipInfo } from '../state/services';
import { decodeCluster, decodeLoadAssignment } from './decode-clusters';
import { decodeInboundListener } from './decode-inbound';
import { decodeVipListener } from './decode-listeners';
import { decodeRouteConfiguration } from './decode-routes';
import { XdsResourceError, type Any, type Msg } from './decode-util';
import { ipFamily } from '../util/ip';
import { decodeAny } from './protos';
import { CDS, EDS, LDS, RDS, TYPE_URL_PREFIX } from './resource-types';

export { XdsResourceError } from './decode-util';

/** What one decoded resource contributes to agent state. */
export type AgentResource =
  | { kind: 'cluster'; cluster: ClusterInfo; eds: boolean }
  | { kind: 'endpoints'; cluster: string; endpoints: EndpointInfo[] }
  | { kind: 'vip'; vip: VipInfo }
  | { kind: 'routes'; table: RouteTable }
  | {
      kind: 'inbound';
      node: string;
      workloads: InboundWorkload[];
      /** Security policy of each local pod, by pod IP (every pod of the listener has an entry). */
      policies: Map<string, InboundPolicy>;
    }
  | { kind: 'ignored'; why: string };

/** One resource of a type that changed: `before` absent when it is new, `after` absent when it is gone. */
export interface ResourceChange {
  name: string;
  before?: AgentResource;
  after?: AgentResource;
}

export interface InboundWorkload {
  pod: string;
  namespace: string;
  ip: string;
}

function decodeListener(l: Msg): AgentResource {
  const name = String(l.name ?? '');
  if (l.api_listener) return { kind: 'ignored', why: 'API listener (for proxyless clients)' };
  if (String(l.traffic_direction ?? 'UNSPECIFIED') === 'INBOUND') return decodeInboundListener(name, l);
  return decodeVipListener(name, l);
}

/** The route table names a decoded listener reads over RDS (what the ADS client subscribes to). */
export function routeTablesOf(r: AgentResource): string[] {
  if (r.kind !== 'vip') return [];
  const names = r.vip.routeTable ? [r.vip.routeTable] : [];
  if (r.vip.consumerRouteTables) names.push(...Object.values(r.vip.consumerRouteTables));
  return names;
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
  let resource: AgentResource;
  try {
    resource = decodeNamed(typeUrl, msg);
  } catch (e) {
    // Anything else a decoder throws (a nested Any's bad bytes, a field of an unexpected shape) is still this
    // resource's fault: NACK it by name rather than with a decoder's internals.
    if (e instanceof XdsResourceError) throw e;
    throw new XdsResourceError(`${typeUrl.slice(typeUrl.lastIndexOf('.') + 1)} ${name}: ${(e as Error).message}`);
  }
  checkUsable(name, resource);
  return { name, resource };
}

/** Longest timer Node keeps: a longer one fires after 1 ms instead, so every connect would time out at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What any decoder's output must be for the agent to use it (as Envoy refuses the same): addresses it dials
 * or matches are IP literals (an EDS endpoint is never resolved by name), ports are 1-65535, and a connect
 * timeout is a duration a timer can hold.
 */
function checkUsable(name: string, r: AgentResource): void {
  const ip = (v: string): boolean => ipFamily(v) !== 0;
  const port = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;
  if (r.kind === 'cluster') {
    const ms = r.cluster.connectTimeoutMs;
    if (!(Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIMER_MS)) throw new XdsResourceError(`cluster ${name}: connect_timeout of ${ms} ms is not a usable duration (0 to ${MAX_TIMER_MS} ms)`);
  } else if (r.kind === 'endpoints') {
    const bad = r.endpoints.find((e) => !ip(e.ip) || !port(e.port));
    if (bad) throw new XdsResourceError(`ClusterLoadAssignment ${name}: endpoint ${bad.ip}:${bad.port} is not an IP address and port (EDS endpoints are never resolved by name)`);
  } else if (r.kind === 'vip') {
    if (!ip(r.vip.vip) || !port(r.vip.port)) throw new XdsResourceError(`listener ${name}: ${r.vip.vip}:${r.vip.port} is not an IP address and port`);
  } else if (r.kind === 'inbound') {
    const bad = r.workloads.find((w) => !ip(w.ip));
    if (bad) throw new XdsResourceError(`listener ${name}: pod ${bad.namespace}/${bad.pod} has the IP ${JSON.stringify(bad.ip)}, which is not an IP address`);
  }
}

function decodeNamed(typeUrl: string, msg: Msg): AgentResource {
  switch (typeUrl) {
    case CDS:
      return decodeCluster(msg);
    case EDS:
      return decodeLoadAssignment(msg);
    case LDS:
      return decodeListener(msg);
    case RDS:
      return { kind: 'routes', table: decodeRouteConfiguration(msg) };
    default:
      throw new XdsResourceError(`unsupported resource type ${typeUrl}`);
  }
}
