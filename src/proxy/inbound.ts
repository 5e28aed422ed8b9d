// Inbound (15006): sk_lookup steered a connection for the pod here; forward it to the pod's application.

import net from 'node:net';
import { PORT_HBONE, PORT_INBOUND, PORT_OUTBOUND } from '../datapath/types';
import { UNKNOWN, type Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { PodSockets, ProxyContext } from './context';
import { forward } from './forward';

const AGENT_PORTS = new Set([PORT_OUTBOUND, PORT_INBOUND, PORT_HBONE]);

export function handleInbound(ctx: ProxyContext, pod: Workload, sockets: PodSockets, accepted: net.Socket): void {
  const peer = { ip: accepted.remoteAddress ?? '', port: accepted.remotePort ?? 0 };
  // sk_lookup does not rewrite packets: the accepted socket's local address is the original destination.
  const target = { ip: accepted.localAddress ?? '', port: accepted.localPort ?? 0 };
  if (AGENT_PORTS.has(target.port)) {
    ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'loop' });
    ctx.log.warn({ pod: `${pod.namespace}/${pod.name}`, peer, target }, 'refusing inbound connection addressed to the agent\'s own port (would loop)');
    accepted.resetAndDestroy();
    return;
  }
  const localSrc = ctx.workloads.findByIp(peer.ip);
  const remoteSrc = localSrc ? undefined : ctx.services.findWorkload(peer.ip);
  const labels: TcpLabels = {
    reporter: 'destination',
    source_workload: localSrc?.workloadName ?? remoteSrc?.pod ?? UNKNOWN,
    source_workload_namespace: localSrc?.namespace ?? remoteSrc?.namespace ?? UNKNOWN,
    source_principal: UNKNOWN,
    destination_workload: pod.workloadName,
    destination_workload_namespace: pod.namespace,
    destination_principal: UNKNOWN,
    destination_service: UNKNOWN,
    connection_security_policy: 'none',
    response_flags: '-',
  };
  // The upstream leaves from the pod netns towards the pod's own IP: sk_lookup skips same-pod flows, so it
  // reaches the application instead of coming back here.
  void forward(ctx, { direction: 'inbound', pod, accepted, src: peer, dst: target, targets: [target], labels: () => labels, sockets });
}
