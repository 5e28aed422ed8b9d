// Outbound (15001): a pod's redirected connect arrives here; find where it meant to go and forward it.

import net from 'node:net';
import { PORT_HBONE, PORT_INBOUND, PORT_OUTBOUND } from '../datapath/types';
import type { EndpointInfo } from '../state/services';
import { UNKNOWN, type Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { Endpoint } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';
import { forward, type Target } from './forward';

const AGENT_PORTS = new Set([PORT_OUTBOUND, PORT_INBOUND, PORT_HBONE]);

/** What the agent knows about the workload behind a destination IP. */
interface DestinationInfo {
  workload: string;
  namespace: string;
  serviceAccount?: string;
  inMesh: boolean;
}

function destinationInfo(ctx: ProxyContext, ip: string, ep?: EndpointInfo): DestinationInfo | undefined {
  const local = ctx.workloads.findByIp(ip);
  // A local pod is in the mesh exactly when it is enrolled here.
  if (local) return { workload: local.workloadName, namespace: local.namespace, serviceAccount: local.serviceAccount, inMesh: true };
  const meta = ep ?? ctx.services.findWorkload(ip);
  if (meta?.pod && meta.namespace) return { workload: meta.pod, namespace: meta.namespace, serviceAccount: meta.serviceAccount, inMesh: meta.inMesh };
  return undefined;
}

/** Mesh destinations (in the mesh, identity known) are reached over HBONE when the agent has identities. */
function targetFor(ctx: ProxyContext, ep: Endpoint, info: DestinationInfo | undefined): Target {
  if (ctx.mesh && info?.inMesh && info.serviceAccount) {
    return { ip: ep.ip, port: ep.port, via: 'hbone', peerId: ctx.mesh.spiffeIdOf({ namespace: info.namespace, serviceAccount: info.serviceAccount }) };
  }
  return { ip: ep.ip, port: ep.port, via: 'tcp' };
}

export function handleOutbound(ctx: ProxyContext, pod: Workload, sockets: PodSockets, accepted: net.Socket): void {
  const peer = { ip: accepted.remoteAddress ?? '', port: accepted.remotePort ?? 0 };
  const local = { ip: accepted.localAddress ?? '', port: accepted.localPort ?? 0 };
  const dst = sockets.originalDst(peer, local);
  if (dst === null) {
    // Only connections redirected by connect4/6 have a recorded destination; anything else dialed 15001 itself.
    ctx.metrics.proxyErrors.inc({ direction: 'outbound', reason: 'no_original_dst' });
    ctx.log.warn(
      { pod: `${pod.namespace}/${pod.name}`, peer, local },
      'no original destination recorded for connection on 15001 (dialed the outbound port directly?); resetting it',
    );
    accepted.resetAndDestroy();
    return;
  }
  if (AGENT_PORTS.has(dst.port) && pod.ips.includes(dst.ip)) {
    ctx.metrics.proxyErrors.inc({ direction: 'outbound', reason: 'loop' });
    ctx.log.warn({ pod: `${pod.namespace}/${pod.name}`, dst }, "refusing outbound connection to the agent's own port (would loop)");
    accepted.resetAndDestroy();
    return;
  }
  // HTTP ports (declared, or to be detected) go to the L7 proxy; what turns out not to be HTTP comes back here.
  if (ctx.http) {
    const service = ctx.services.servicePort(dst.ip, dst.port) ?? null;
    const protocol = service ? service.protocol : (ctx.services.portProtocol(dst.ip, dst.port) ?? 'tcp');
    if (protocol !== 'tcp') {
      ctx.http.serveOutbound(pod, sockets, accepted, dst, service, protocol, (initial) => forwardTcp(ctx, pod, sockets, accepted, peer, dst, initial, true));
      return;
    }
  }
  forwardTcp(ctx, pod, sockets, accepted, peer, dst, undefined, false);
}

/** Today's L4 path: the Service's endpoints (LB pick first, failover after) or the destination itself. */
function forwardTcp(ctx: ProxyContext, pod: Workload, sockets: PodSockets, accepted: net.Socket, peer: Endpoint, dst: Endpoint, initial: Buffer | undefined, detectedTcp: boolean): void {
  const svc = ctx.services.resolve(dst.ip, dst.port);
  const infos = new Map<Target, DestinationInfo | undefined>();
  const targets: Target[] = (svc ? svc.candidates : [dst]).map((ep) => {
    const info = destinationInfo(ctx, ep.ip, svc ? (ep as EndpointInfo) : undefined);
    const t = targetFor(ctx, ep, info);
    infos.set(t, info);
    return t;
  });
  const sourcePrincipal = ctx.mesh ? ctx.mesh.spiffeIdOf(pod) : UNKNOWN;
  const labels = (chosen: Target | null): TcpLabels => {
    const info = chosen ? infos.get(chosen) : undefined;
    const mtls = chosen?.via === 'hbone';
    return {
      reporter: 'source',
      source_workload: pod.workloadName,
      source_workload_namespace: pod.namespace,
      source_principal: mtls ? sourcePrincipal : UNKNOWN,
      destination_workload: info?.workload ?? UNKNOWN,
      destination_workload_namespace: info?.namespace ?? UNKNOWN,
      destination_principal: mtls ? chosen!.peerId! : UNKNOWN,
      destination_service: svc?.cluster.host ?? UNKNOWN,
      connection_security_policy: mtls ? 'mutual_tls' : UNKNOWN,
      response_flags: '-',
    };
  };
  void forward(ctx, {
    direction: 'outbound',
    pod,
    downstream: { kind: 'socket', socket: accepted, initial },
    src: peer,
    dst,
    targets,
    labels,
    sockets,
    connectTimeoutMs: svc?.cluster.connectTimeoutMs,
    detectedTcp,
  });
}
