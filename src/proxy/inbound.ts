// Inbound plaintext (15006): sk_lookup steered a connection for the pod here; authorize it, forward it to the app.

import net from 'node:net';
import { PORT_HBONE, PORT_INBOUND, PORT_OUTBOUND } from '../datapath/types';
import { parseSpiffeId } from '../identity/types';
import { UNKNOWN, type Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { Endpoint } from './connection-tracker';
import type { PeerMeta } from './hbone/peer-meta';
import type { PodSockets, ProxyContext } from './context';
import { forward, refuse, type ForwardRequest } from './forward';

export const AGENT_PORTS = new Set([PORT_OUTBOUND, PORT_INBOUND, PORT_HBONE]);

/** The calling pod as a destination agent names it in its metrics (Istio's source_* labels). */
export interface InboundSource {
  workload: string;
  namespace: string;
  app: string;
  version: string;
}

/**
 * The source of an inbound connection, from what the agent knows about `peerIp`: a pod of its own, else what
 * the source agent said of it on the CONNECT (`peer`), else a Service endpoint's metadata; the namespace falls
 * back to the peer certificate's.
 */
export function inboundSource(ctx: ProxyContext, peerIp: string, principal: string | null, peer: PeerMeta | null): InboundSource {
  const local = ctx.workloads.findByIp(peerIp);
  const s = local
    ? { workload: local.workloadName, namespace: local.namespace, app: local.labels.app, version: local.labels.version }
    : peer
      ? { workload: peer.workload, namespace: peer.namespace, app: peer.app ?? undefined, version: peer.version ?? undefined }
      : (() => {
          const remote = ctx.services.findWorkload(peerIp);
          return { workload: remote?.pod, namespace: remote?.namespace, app: remote?.app, version: remote?.version };
        })();
  return {
    workload: s.workload ?? UNKNOWN,
    namespace: s.namespace ?? (principal ? (parseSpiffeId(principal)?.namespace ?? UNKNOWN) : UNKNOWN),
    app: s.app ?? UNKNOWN,
    version: s.version ?? UNKNOWN,
  };
}

/** Istio's destination-side labels for a connection (the TCP view); the source as `inboundSource` names it. */
export function inboundLabels(ctx: ProxyContext, pod: Workload, peerIp: string, principal: string | null, peer: PeerMeta | null = null): TcpLabels {
  const src = inboundSource(ctx, peerIp, principal, peer);
  return {
    reporter: 'destination',
    source_workload: src.workload,
    source_workload_namespace: src.namespace,
    source_principal: principal ?? UNKNOWN,
    destination_workload: pod.workloadName,
    destination_workload_namespace: pod.namespace,
    destination_principal: principal && ctx.mesh ? ctx.mesh.spiffeIdOf(pod) : UNKNOWN,
    destination_service: UNKNOWN,
    connection_security_policy: principal ? 'mutual_tls' : 'none',
    response_flags: '-',
  };
}

/**
 * Authorizes (PeerAuthentication + AuthorizationPolicy) and forwards to the pod's application. The upstream
 * leaves from the pod netns towards the pod's own IP: sk_lookup skips same-pod flows, so it reaches the
 * application instead of coming back here.
 */
export function authorizeAndForward(ctx: ProxyContext, r: Omit<ForwardRequest, 'targets' | 'labels' | 'authz'>, principal: string | null, peer: PeerMeta | null = null): void {
  if (!authorizeConnection(ctx, r, principal, peer)) return;
  void forward(ctx, { ...withLabels(ctx, r, principal, peer), authz: { podIp: r.dst.ip, request: { principal, sourceIp: r.src.ip, destinationPort: r.dst.port } } });
}

function withLabels(ctx: ProxyContext, r: Omit<ForwardRequest, 'targets' | 'labels' | 'authz'>, principal: string | null, peer: PeerMeta | null): ForwardRequest {
  const labels = inboundLabels(ctx, r.pod, r.src.ip, principal, peer);
  return { ...r, targets: [{ ip: r.dst.ip, port: r.dst.port, via: 'tcp' }], labels: () => labels };
}

/** The TCP view of the pod's policy for a whole connection; a refusal is answered (reset or 403) and counted. */
function authorizeConnection(ctx: ProxyContext, r: Omit<ForwardRequest, 'targets' | 'labels' | 'authz'>, principal: string | null, peer: PeerMeta | null = null): boolean {
  const decision = ctx.authorize(r.dst.ip, { principal, sourceIp: r.src.ip, destinationPort: r.dst.port });
  if (decision.allowed) return true;
  ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'denied' });
  ctx.log.debug({ pod: `${r.pod.namespace}/${r.pod.name}`, src: r.src, dst: r.dst, principal, reason: decision.reason }, 'inbound connection denied');
  refuse(ctx, withLabels(ctx, r, principal, peer), 'DENY', decision.reason, 403);
  return false;
}

/** Refuses a plaintext connection to a STRICT pod before anything is parsed (as on TCP ports). */
export function refuseIfStrictPlaintext(ctx: ProxyContext, r: Omit<ForwardRequest, 'targets' | 'labels' | 'authz'>): boolean {
  if (!ctx.strictMtls(r.dst.ip)) return false;
  return !authorizeConnection(ctx, r, null);
}

export function handleInbound(ctx: ProxyContext, pod: Workload, sockets: PodSockets, accepted: net.Socket): void {
  const peer: Endpoint = { ip: accepted.remoteAddress ?? '', port: accepted.remotePort ?? 0 };
  // sk_lookup does not rewrite packets: the accepted socket's local address is the original destination.
  const target: Endpoint = { ip: accepted.localAddress ?? '', port: accepted.localPort ?? 0 };
  if (AGENT_PORTS.has(target.port)) {
    ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'loop' });
    ctx.log.warn({ pod: `${pod.namespace}/${pod.name}`, peer, target }, "refusing inbound connection addressed to the agent's own port (would loop)");
    accepted.resetAndDestroy();
    return;
  }
  const r = { direction: 'inbound' as const, pod, downstream: { kind: 'socket' as const, socket: accepted }, src: peer, dst: target, sockets };
  const protocol = ctx.http ? (ctx.services.portProtocol(target.ip, target.port) ?? 'tcp') : 'tcp';
  if (protocol === 'tcp') {
    authorizeAndForward(ctx, r, null);
    return;
  }
  // HTTP: authorization is per request (L7 rules need the request), except STRICT, which refuses plaintext outright.
  if (refuseIfStrictPlaintext(ctx, r)) return;
  ctx.http!.serveInbound(pod, sockets, accepted, peer, target, null, protocol, (initial) =>
    authorizeAndForward(ctx, { ...r, downstream: { kind: 'socket', socket: accepted, initial } }, null),
  );
}
