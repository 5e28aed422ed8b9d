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
  switch (typeUrl) {
    case CDS:
      return { name, resource: decodeCluster(msg) };
    case EDS:
      return { name, resource: decodeLoadAssignment(msg) };
    case LDS:
      return { name, resource: decodeListener(msg) };
    case RDS:
      return { name, resource: { kind: 'routes', table: decodeRouteConfiguration(msg) } };
    default:
      throw new XdsResourceError(`unsupported resource type ${typeUrl}`);
  }
}
