// Inbound HBONE (15008): an authenticated CONNECT for the pod; check the target, authorize, tunnel to the app.

import type { Workload } from '../state/workloads';
import type { PodSockets, ProxyContext } from './context';
import type { HboneConnectContext, HboneRespond } from './hbone';
import { relayPlainStreams } from './http/tunnel-relay';
import { TunnelSocket } from './http/tunnel-socket';
import { dialUpstream } from './http/upstream-dial';
import { AGENT_PORTS, authorizeAndForward, inboundLabels } from './inbound';

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
  let protocol = ctx.http ? (ctx.services.portProtocol(target.ip, target.port) ?? 'tcp') : 'tcp';
  // An undeclared port the source agent already detected: no second wait for the client's first bytes.
  if (protocol === 'detect' && c.detected === 'tcp') protocol = 'tcp';
  if (protocol === 'tcp') {
    authorizeAndForward(ctx, { direction: 'inbound', pod, downstream: { kind: 'hbone', stream: c.stream, respond }, src: c.peerAddress, dst: target, sockets }, c.peerId, c.peer);
    return;
  }
  // HTTP inside the tunnel: the tunnel is accepted, every request in it is authorized on its own.
  respond(200);
  const tunnel = new TunnelSocket(c.stream, { remoteAddress: c.peerAddress.ip, remotePort: c.peerAddress.port, localAddress: target.ip, localPort: target.port });
  ctx.http!.serveInbound(pod, sockets, tunnel, c.peerAddress, target, c.peerId, protocol, (initial) => tunnelToApp(ctx, pod, sockets, tunnel, c, initial), c.detected !== null, c.peer);
}

/** A detected port whose tunnel turned out not to carry HTTP: the TCP view decides, then bytes go through. */
function tunnelToApp(ctx: ProxyContext, pod: Workload, sockets: PodSockets, tunnel: TunnelSocket, c: HboneConnectContext, initial: Buffer): void {
  const target = c.authority;
  const decision = ctx.authorize(target.ip, { principal: c.peerId, sourceIp: c.peerAddress.ip, destinationPort: target.port });
  const labels = inboundLabels(ctx, pod, c.peerAddress.ip, c.peerId, c.peer);
  if (!decision.allowed) {
    ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'denied' });
    tunnel.destroy(new Error(decision.reason));
    const conn = ctx.tracker.open({ direction: 'inbound', pod: pod.uid, src: c.peerAddress, dst: target, labels: { ...labels, response_flags: 'DENY' }, bytes: () => ({ up: 0, down: 0 }) });
    ctx.tracker.close(conn.id, { bytesUp: 0, bytesDown: 0, responseFlags: 'DENY', error: decision.reason });
    return;
  }
  const conn = ctx.tracker.open({ direction: 'inbound', pod: pod.uid, src: c.peerAddress, dst: target, labels, bytes: () => ({ up: 0, down: 0 }) });
  dialUpstream(ctx, pod, sockets, { ip: target.ip, port: target.port, via: 'tcp' }, ctx.connectTimeoutMs).then(
    (app) => {
      if (initial.length > 0) app.write(initial);
      void relayPlainStreams(tunnel, app).then((r) => {
        ctx.tracker.close(conn.id, { bytesUp: r.bytesUp + initial.length, bytesDown: r.bytesDown, responseFlags: r.error ? 'UC' : '-', error: r.error?.message ?? null });
      });
    },
    (err: Error) => {
      tunnel.destroy(err);
      ctx.tracker.close(conn.id, { bytesUp: 0, bytesDown: 0, responseFlags: 'UF', error: err.message });
    },
  );
}
