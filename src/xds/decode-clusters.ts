// CDS and EDS on the agent: Cluster -> ClusterInfo (with the port's protocol and its traffic policy,
// decode-cluster-policy.ts), ClusterLoadAssignment -> endpoints. Sized for 10,000 Services and 20,000 pods:
// endpoint strings that repeat across clusters are shared by ServiceStore when it indexes them.

import type { PortProtocol } from '../state/routes';
import type { EndpointInfo } from '../state/services';
import type { AgentResource } from './agent-resources';
import { decodeClusterPolicy } from './decode-cluster-policy';
import { durationMs, intern, internOpt, list, nodemeshMeta, XdsResourceError, type Msg } from './decode-util';
import { parseOutboundClusterName } from './resource-types';

const PORT_PROTOCOLS: readonly PortProtocol[] = ['tcp', 'http', 'http2', 'grpc', 'detect'];

export function decodeCluster(c: Msg): AgentResource {
  const name = intern(String(c.name ?? ''));
  const type = String(c.type ?? 'STATIC');
  if (type === 'ORIGINAL_DST') {
    return { kind: 'ignored', why: 'original-destination clusters need no state: the agent always forwards to the original destination' };
  }
  if (type !== 'EDS') throw new XdsResourceError(`cluster ${name}: discovery type ${type} is not supported (supported: EDS)`);
  const meta = nodemeshMeta(c.metadata);
  const host = hostOf(name, meta.host);
  const policy = decodeClusterPolicy(`cluster ${name}`, c, meta);
  // Connections (the L4 path) rotate over the endpoints; requests (L7) follow the cluster's policy.
  return {
    kind: 'cluster',
    eds: true,
    cluster: { name, host, lbPolicy: 'round_robin', connectTimeoutMs: durationMs(c.connect_timeout, 10_000), protocol: protocolOf(`cluster ${name}`, meta.protocol), policy },
  };
}

/**
 * The Service FQDN: metadata `host`, else the outbound cluster name's. When both say the same, the name's: a slice
 * of the (kept) name costs a few words where the metadata's own copy of a 30-60 character host costs its length.
 */
function hostOf(name: string, metaHost: unknown): string {
  const fromName = parseOutboundClusterName(name)?.host;
  if (typeof metaHost !== 'string') return fromName ?? name;
  return fromName === metaHost ? fromName : metaHost;
}

/** Metadata `protocol` (what the Service port speaks); clusters from control planes that do not say are TCP. */
export function protocolOf(where: string, v: unknown): PortProtocol {
  if (v === undefined || v === null) return 'tcp';
  const known = PORT_PROTOCOLS.find((p) => p === v);
  if (known) return known;
  throw new XdsResourceError(`${where}: metadata nodemesh.protocol ${JSON.stringify(v)} is not one of ${PORT_PROTOCOLS.join(', ')}`);
}

export function decodeLoadAssignment(cla: Msg): AgentResource {
  const cluster = intern(String(cla.cluster_name ?? ''));
  const endpoints: EndpointInfo[] = [];
  for (const loc of list(cla, 'endpoints')) {
    for (const lb of list(loc, 'lb_endpoints')) {
      const health = String(lb.health_status ?? 'UNKNOWN');
      if (health !== 'HEALTHY' && health !== 'UNKNOWN') continue;
      const sa = ((lb.endpoint as Msg | undefined)?.address as Msg | undefined)?.socket_address as Msg | undefined;
      if (!sa || typeof sa.address !== 'string' || !sa.address) {
        throw new XdsResourceError(`ClusterLoadAssignment ${cluster}: endpoint without a socket address (only socket addresses are supported)`);
      }
      const port = Number(sa.port_value ?? 0);
      if (!(port > 0 && port < 65536)) throw new XdsResourceError(`ClusterLoadAssignment ${cluster}: endpoint ${sa.address} has invalid port ${sa.port_value}`);
      const m = nodemeshMeta(lb.metadata);
      const ip = sa.address;
      const pod = typeof m.pod === 'string' ? m.pod : undefined;
      const namespace = internOpt(m.namespace);
      const serviceAccount = internOpt(m.serviceAccount);
      const node = internOpt(m.node);
      const inMesh = m.inMesh === true;
      const app = internOpt(m.app);
      const version = internOpt(m.version);
      // The workload directory's endpoints (one per pod) carry no app or version: without the two fields an
      // endpoint is two words smaller. Either way, an absent label reads as undefined.
      endpoints.push(
        app === undefined && version === undefined
          ? { ip, port, pod, namespace, serviceAccount, node, inMesh }
          : { ip, port, pod, namespace, serviceAccount, app, version, node, inMesh },
      );
    }
  }
  // An exact-size copy: a pushed-to array keeps room for 17 elements, most clusters have two or three.
  return { kind: 'endpoints', cluster, endpoints: endpoints.slice() };
}
