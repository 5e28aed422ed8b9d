// The source address of the agent's connection to a pod's application: the original client's (a transparent
// socket), so the application sees who called, or the pod's own where the kernel would not have it.

import net from 'node:net';
import type { Workload } from '../state/workloads';
import type { Endpoint } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';

export interface UpstreamSource {
  /** The socket to connect (null: a plain socket of the agent's own netns, in tests). */
  fd: number | null;
  /** Call once connect() has finished, however it ended. */
  connected(): void;
}

const nothing = (): void => undefined;

/** Pods already told about (one warning each per reason, not one per connection). */
const warned = new WeakMap<Workload, Set<string>>();

function warnOnce(ctx: ProxyContext, pod: Workload, reason: string, detail: object): void {
  let seen = warned.get(pod);
  if (!seen) warned.set(pod, (seen = new Set()));
  if (seen.has(reason)) return;
  seen.add(reason);
  ctx.log.warn({ pod: `${pod.namespace}/${pod.name}`, reason, ...detail }, "connecting to the application from the pod's own address: it will not see the client's");
}

/**
 * The upstream socket for `target`. Inbound (HBONE or plaintext), when the client is not the pod itself, it is a
 * transparent socket already bound to the client's address. An inbound connection that cannot have one (the pod
 * netns lacks the routing, the kernel refuses the address) comes from the pod's own address instead, and is
 * counted in nodemesh_proxy_errors_total{reason="source_not_preserved"}.
 */
export async function upstreamSource(ctx: ProxyContext, r: { direction: 'inbound' | 'outbound'; pod: Workload; src: Endpoint; sockets: PodSockets }, target: Endpoint): Promise<UpstreamSource> {
  const family = net.isIPv6(target.ip) ? 6 : 4;
  if (r.direction === 'inbound') {
    const client = r.src.ip.startsWith('::ffff:') ? r.src.ip.slice(7) : r.src.ip;
    if (!r.pod.ips.includes(client)) {
      const t = net.isIP(client) === family ? r.sockets.transparentSocket?.(family, client, target) : null;
      if (t) {
        try {
          const s = await t;
          return { fd: s.fd, connected: () => s.connected() };
        } catch (err) {
          warnOnce(ctx, r.pod, `the kernel refused the client address: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { family });
        }
      } else {
        warnOnce(ctx, r.pod, 'no transparent sockets for this family in the pod netns (see the datapath log at enrollment)', { family });
      }
      ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'source_not_preserved' });
    }
  }
  return { fd: await r.sockets.newSocket(family), connected: nothing };
}
