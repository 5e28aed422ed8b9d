// Inbound HBONE (15008): an authenticated CONNECT for the pod; check the target, authorize, tunnel to the app.

import type { Workload } from '../state/workloads';
import type { PodSockets, ProxyContext } from './context';
import type { HboneConnectContext, HboneRespond } from './hbone';
import { AGENT_PORTS, authorizeAndForward } from './inbound';

export function handleHboneConnect(ctx: ProxyContext, pod: Workload, sockets: PodSockets, c: HboneConnectContext, respond: HboneRespond): void {
  const target = c.authority;
  if (!pod.ips.includes(target.ip)) {
    ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'wrong_target' });
    respond(400, `${target.ip} is not pod ${pod.namespace}/${pod.name} (${pod.ips.join(', ')}): HBONE must target the pod it is sent to`);
    return;
  }
  if (AGENT_PORTS.has(target.port)) {
    ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'loop' });
    respond(400, `port ${target.port} belongs to the mesh agent`);
    return;
  }
  authorizeAndForward(ctx, { direction: 'inbound', pod, downstream: { kind: 'hbone', stream: c.stream, respond }, src: c.peerAddress, dst: target, sockets }, c.peerId);
}
