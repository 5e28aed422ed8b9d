// Outbound (15001): a pod's redirected connect arrives here; find where it meant to go and forward it.

import net from 'node:net';
import { PORT_HBONE, PORT_INBOUND, PORT_OUTBOUND } from '../datapath/types';
import type { EndpointInfo } from '../state/services';
import { UNKNOWN, type Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { Endpoint } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';
import { forward } from './forward';

const AGENT_PORTS = new Set([PORT_OUTBOUND, PORT_INBOUND, PORT_HBONE]);

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
  // A service VIP resolves to endpoints (LB pick first, failover after); anything else passes through.
  const svc = ctx.services.resolve(dst.ip, dst.port);
  const targets: Endpoint[] = svc ? svc.candidates : [dst];
  const labels = (chosen: Endpoint | null): TcpLabels => {
    const ep: EndpointInfo | undefined =
      chosen === null ? undefined : svc ? (chosen as EndpointInfo) : ctx.services.findWorkload(chosen.ip);
    const local = chosen === null ? undefined : ctx.workloads.findByIp(chosen.ip);
    return {
      reporter: 'source',
      source_workload: pod.workloadName,
      source_workload_namespace: pod.namespace,
      source_principal: UNKNOWN,
      destination_workload: local?.workloadName ?? ep?.pod ?? UNKNOWN,
      destination_workload_namespace: local?.namespace ?? ep?.namespace ?? UNKNOWN,
      destination_principal: UNKNOWN,
      destination_service: svc?.cluster.host ?? UNKNOWN,
      connection_security_policy: UNKNOWN,
      response_flags: '-',
    };
  };
  void forward(ctx, {
    direction: 'outbound',
    pod,
    accepted,
    src: peer,
    dst,
    targets,
    labels,
    sockets,
    connectTimeoutMs: svc?.cluster.connectTimeoutMs,
  });
}
