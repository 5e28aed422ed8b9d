// One pod's in-netns listeners (15001 outbound, 15006 inbound, 15008 HBONE) served by the agent's event loop.

import net from 'node:net';
import type { Workload } from '../state/workloads';
import { closeFdQuietly, releaseFd } from '../util/fd';
import type { PodSockets, ProxyContext } from './context';
import { HboneServer, type HboneServerStats } from './hbone';
import { handleInbound } from './inbound';
import { handleHboneConnect } from './inbound-hbone';
import { handleOutbound } from './outbound';

export interface PodListenerFds {
  outbound: number[];
  inbound: number[];
  /** 15008 listeners; served only when the agent has identities (mTLS), else closed. */
  hbone: number[];
}

export class PodProxy {
  private readonly servers: net.Server[] = [];
  private readonly hbone: HboneServer[] = [];
  /** 15001/15006 fds no server has yet. */
  private pendingListen: { fd: number; handler: typeof handleOutbound }[] = [];
  /** 15008 fds waiting for the listeners above and then for the pod's first certificate. */
  private pendingHbone: number[] = [];
  private hboneFailed = false;
  /** waiting: for certFor; missing: its request failed, the next issuance restarts the wait; starting/serving: servers take/own the fds. */
  private hboneState: 'idle' | 'waiting' | 'missing' | 'starting' | 'serving' = 'idle';
  private readonly settledWaiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly ctx: ProxyContext,
    readonly pod: Workload,
    private readonly sockets: PodSockets,
  ) {}

  /**
   * Starts serving the given listening fds; takes ownership of them. Until a server has an fd, close() closes
   * it, so an fd is never left open with nobody to accept from it (a thread that exits mid-start included).
   */
  async start(fds: PodListenerFds): Promise<void> {
    this.pendingListen = [
      ...fds.outbound.map((fd) => ({ fd, handler: handleOutbound })),
      ...fds.inbound.map((fd) => ({ fd, handler: handleInbound })),
    ];
    this.pendingHbone = [...fds.hbone];
    let fd = -1;
    try {
      while (this.pendingListen.length > 0 && !this.closed) {
        const next = this.pendingListen.shift()!;
        fd = next.fd;
        const handler = next.handler;
        const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => handler(this.ctx, this.pod, this.sockets, s));
        server.on('error', (err) => this.ctx.log.error({ err, pod: this.name }, 'listener error (still serving)'));
        await listenFd(server, fd);
        fd = -1;
        if (this.closed) server.close();
        else this.servers.push(server);
      }
    } catch (err) {
      this.close();
      // the usual failure (not a socket, wrong state) leaves the fd open: Node could not wrap it
      closeFdQuietly(fd);
      throw err;
    }
    if (!this.closed) this.startHbone();
  }

  private get name(): string {
    return `${this.pod.namespace}/${this.pod.name}`;
  }

  /**
   * HBONE needs the pod's certificate, which may still be on its way from the CA: the kernel queues
   * connections on the fd meanwhile. A failed request keeps the fds (and the queue) and waits for the next
   * issuance (`identityRotated`), so the pod is served over HBONE as soon as a certificate exists. Without
   * identities there is no HBONE: 15008 is closed so peers get a clear refusal.
   */
  private startHbone(): void {
    const mesh = this.ctx.mesh;
    if (!mesh) {
      for (const fd of this.pendingHbone.splice(0)) closeFdQuietly(fd);
      this.settle();
      return;
    }
    const id = mesh.spiffeIdOf(this.pod);
    this.hboneState = 'waiting';
    mesh.identity.certFor(id).then(
      () => this.serveHbone(id),
      (err: unknown) => {
        if (this.closed) return;
        this.hboneState = 'missing';
        this.settle();
        this.ctx.log.warn(
          { err, pod: this.name, identity: id },
          'no certificate for the pod yet: inbound HBONE (15008) connections wait in the kernel queue until one is issued',
        );
      },
    );
  }

  private async serveHbone(id: string): Promise<void> {
    const mesh = this.ctx.mesh!;
    this.hboneState = 'starting';
    // one gate for the pod's listeners (IPv4, IPv6); per-source and total counts are the thread's
    const gate = mesh.handshakes.limiter.gate();
    const log = this.ctx.log.child({ pod: this.name });
    try {
      // one fd at a time leaves the list as its server takes it: close() and failures close the rest
      while (this.pendingHbone.length > 0 && !this.closed) {
        const server = new HboneServer({
          identity: () => mesh.identity.current(id)!,
          trustBundle: () => mesh.identity.trustBundle(),
          onConnect: (c, respond) => handleHboneConnect(this.ctx, this.pod, this.sockets, c, respond),
          keepalive: mesh.keepalive,
          handshakeGate: gate,
          handshakeTimeoutMs: mesh.handshakes.timeoutMs,
          h2: mesh.h2,
          log,
        });
        const fd = this.pendingHbone.shift()!;
        try {
          await server.listen({ fd: releaseFd(fd) });
        } catch (err) {
          closeFdQuietly(fd); // as in start(): a failed listen leaves the fd open
          throw err;
        }
        if (this.closed) void server.close();
        else this.hbone.push(server);
      }
    } catch (err) {
      this.ctx.log.error({ err, pod: this.name }, 'inbound HBONE (15008) could not start serving');
      this.hboneFailed = true;
      for (const fd of this.pendingHbone.splice(0)) closeFdQuietly(fd);
    }
    this.hboneState = 'serving';
    this.settle();
  }

  /** Whether this proxy still holds the pod's 15008 fds (false without identities, or when serving them failed). */
  get holdsHbone(): boolean {
    return !this.closed && !this.hboneFailed && this.ctx.mesh !== null;
  }

  /**
   * The pod's certificate was issued or rotated: new handshakes present the new one, and a 15008 still waiting
   * for its first certificate after a failed request starts serving.
   */
  identityRotated(): void {
    if (this.hboneState === 'missing' && !this.closed) this.startHbone();
    for (const s of this.hbone) s.updateIdentity();
  }

  hboneStats(): HboneServerStats[] {
    return this.hbone.map((s) => s.stats());
  }

  /**
   * Stops accepting on 15001 and 15006, and on 15008 unless `keepHbone`. Closing a listener hands the
   * connections queued on it to the rest of its SO_REUSEPORT group (a successor agent's), or resets them when
   * it was the last. Connections already relayed keep running until they end (drain); HBONE sessions get
   * GOAWAY: their open tunnels go on, new ones go to a new session.
   */
  stopAccepting(opts: { keepHbone?: boolean } = {}): void {
    for (const s of this.servers.splice(0)) s.close();
    for (const p of this.pendingListen.splice(0)) closeFdQuietly(p.fd);
    if (!opts.keepHbone) this.close();
  }

  /** Stops accepting everywhere. Connections already relayed keep running until they end (drain). */
  close(): void {
    this.closed = true;
    for (const s of this.servers.splice(0)) s.close();
    for (const s of this.hbone.splice(0)) void s.close();
    for (const p of this.pendingListen.splice(0)) closeFdQuietly(p.fd);
    for (const fd of this.pendingHbone.splice(0)) closeFdQuietly(fd);
    this.settle();
  }

  /** Resolves once 15008 serves, is settled without a certificate (missing) or without mesh, or is closed. */
  hboneSettled(): Promise<void> {
    if (this.hboneState === 'missing' || this.hboneState === 'serving') return Promise.resolve();
    if (!this.ctx.mesh || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private settle(): void {
    for (const w of this.settledWaiters.splice(0)) w();
  }
}

function listenFd(server: net.Server, fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: releaseFd(fd) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
