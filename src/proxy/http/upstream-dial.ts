// Opens one upstream connection for L7 from a local pod: a TCP socket made in the pod's netns (so it leaves
// with the pod's IP), or an HBONE tunnel to a mesh destination. HTTP codecs then run over either.

import net from 'node:net';
import type { HttpVersion } from '../../state/routes';
import type { Workload } from '../../state/workloads';
import { connectHeaders } from '../hbone/peer-meta';
import type { PodSockets, ProxyContext } from '../context';
import { connectOnce, type Target } from '../forward';
import { newUpstream } from '../relay';
import { REFUSED_RETRY_BUDGET_MS, retryWhileRefused } from '../refused-retry';
import { upstreamSource, type UpstreamSource } from '../transparent-source';
import { TunnelSocket } from './tunnel-socket';

/** Why an upstream connection could not be made; `flag` is the Envoy response flag the request gets. */
export class UpstreamConnectError extends Error {
  readonly code = 'NM_HTTP_UPSTREAM_CONNECT';
  constructor(
    readonly target: Target,
    message: string,
    readonly flag: 'UF' | 'UH' = 'UF',
  ) {
    super(`${target.ip}:${target.port}${target.via === 'hbone' ? ' (HBONE)' : ''}: ${message}`);
  }
}

/**
 * `detected`: the version detection found on an undeclared port; over HBONE it tells the destination agent,
 * which then does not wait to detect again.
 */
export async function dialUpstream(ctx: ProxyContext, pod: Workload, sockets: PodSockets, target: Target, timeoutMs: number, detected?: HttpVersion): Promise<net.Socket | TunnelSocket> {
  if (target.via === 'hbone') return dialTunnel(ctx, pod, sockets, target, timeoutMs, detected);
  let src: UpstreamSource;
  try {
    const from = target.from !== undefined ? { direction: 'inbound' as const, src: { ip: target.from, port: 0 } } : { direction: 'outbound' as const, src: { ip: '', port: 0 } };
    src = await upstreamSource(ctx, { ...from, pod, sockets }, target);
  } catch (err) {
    throw new UpstreamConnectError(target, `cannot create a socket in the pod network namespace: ${(err as Error).message}`);
  }
  const socket = newUpstream(src.fd, null);
  const err = await connectOnce(socket, target, timeoutMs);
  src.connected();
  if (err !== null) {
    socket.destroy();
    throw new UpstreamConnectError(target, err);
  }
  return socket;
}

/**
 * A destination whose 15008 refuses is restarting its agent: dialled again for a little while (as the L4 path
 * does, refused-retry.ts), so the restart costs the request latency rather than a 503.
 */
async function dialTunnel(ctx: ProxyContext, pod: Workload, sockets: PodSockets, target: Target, timeoutMs: number, detected: HttpVersion | undefined): Promise<TunnelSocket> {
  const mesh = ctx.mesh;
  if (!mesh || !target.peerId) throw new UpstreamConnectError(target, 'HBONE target without mesh identity');
  try {
    const source = await mesh.identity.certFor(mesh.spiffeIdOf(pod));
    const expectedServerId = target.peerId;
    const dial = () =>
      mesh.pool.connect({
        sourcePod: pod.uid,
        source,
        expectedServerId,
        address: { ip: target.ip, port: mesh.hbonePort },
        target: { ip: target.ip, port: target.port },
        newSocket: (family) => sockets.newSocket(family),
        headers: connectHeaders(pod, detected),
      });
    const retried = (): void => ctx.metrics.proxyErrors.inc({ direction: 'outbound', reason: 'hbone_refused_retry' });
    const { stream } = await retryWhileRefused(dial, { budgetMs: Math.min(REFUSED_RETRY_BUDGET_MS, timeoutMs), gone: () => false, retried });
    return new TunnelSocket(stream, { remoteAddress: target.ip, remotePort: target.port, localAddress: pod.ips[0] ?? '', localPort: 0 });
  } catch (err) {
    throw new UpstreamConnectError(target, (err as Error).message);
  }
}
