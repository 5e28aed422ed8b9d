// One pod's in-netns listeners (15001 outbound, 15006 inbound) served by the agent's event loop.

import fs from 'node:fs';
import net from 'node:net';
import type { Workload } from '../state/workloads';
import type { PodSockets, ProxyContext } from './context';
import { handleInbound } from './inbound';
import { handleOutbound } from './outbound';

export interface PodListenerFds {
  outbound: number[];
  inbound: number[];
  /** 15008 listeners; served only when the agent has identities (mTLS), else closed. */
  hbone: number[];
}

export class PodProxy {
  private readonly servers: net.Server[] = [];

  constructor(
    private readonly ctx: ProxyContext,
    readonly pod: Workload,
    private readonly sockets: PodSockets,
  ) {}

  /** Starts serving the given listening fds; takes ownership of them (closed on failure or close()). */
  async start(fds: PodListenerFds): Promise<void> {
    const all = [
      ...fds.outbound.map((fd) => ({ fd, handler: handleOutbound })),
      ...fds.inbound.map((fd) => ({ fd, handler: handleInbound })),
    ];
    // Without identities there is no HBONE: close 15008 so peers get a clear refusal.
    for (const fd of fds.hbone) closeQuietly(fd);
    let i = 0;
    try {
      for (; i < all.length; i++) {
        const { fd, handler } = all[i]!;
        const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) =>
          handler(this.ctx, this.pod, this.sockets, s),
        );
        server.on('error', (err) =>
          this.ctx.log.error({ err, pod: `${this.pod.namespace}/${this.pod.name}` }, 'listener error (still serving)'),
        );
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ fd }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        this.servers.push(server);
      }
    } catch (err) {
      this.close();
      for (let j = i; j < all.length; j++) closeQuietly(all[j]!.fd);
      throw err;
    }
  }

  /** Stops accepting. Connections already relayed keep running until they end (drain). */
  close(): void {
    for (const s of this.servers.splice(0)) s.close();
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed by a server that took it
  }
}
