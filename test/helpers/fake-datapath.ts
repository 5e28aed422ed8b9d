// An in-process Datapath for integration tests without root: loopback listeners, scripted original destinations.

import type { Datapath, DatapathStatus, PodCounters, PodDatapath, PodNetSpec, SocketAddress } from '../../src/datapath/types';

// Raw libuv TCP handles: bound but never listened on by their creator, so the fd is registered with the event
// loop only once, by the agent's own net.Server. The handles are kept referenced so they are never collected.
interface RawTcp {
  bind(host: string, port: number): number;
  getsockname(out: { port?: number }): number;
  fd: number;
}
const { TCP, constants } = (process as unknown as { binding(name: string): { TCP: new (t: number) => RawTcp; constants: { SERVER: number } } }).binding('tcp_wrap');
const keep: RawTcp[] = [];

/** A bound (not yet listening) fd on 127.0.0.1; the agent's listen({fd}) makes it listen. */
function boundFd(): { fd: number; port: number } {
  const h = new TCP(constants.SERVER);
  const err = h.bind('127.0.0.1', 0);
  if (err !== 0) throw new Error(`bind failed: ${err}`);
  const out: { port?: number } = {};
  h.getsockname(out);
  keep.push(h);
  return { fd: h.fd, port: out.port! };
}

export interface FakePod {
  spec: PodNetSpec;
  outboundPort: number;
  inboundPort: number;
}

export class FakeDatapath implements Datapath {
  readonly pods = new Map<string, FakePod>();
  /** Where every outbound connection "originally" went. */
  originalDestination: SocketAddress | null = null;
  failNextEnroll: Error | null = null;
  closed: { detach: boolean } | null = null;
  pruned: string[] = [];
  private cookie = 100n;

  async enroll(spec: PodNetSpec): Promise<PodDatapath> {
    if (this.failNextEnroll) {
      const e = this.failNextEnroll;
      this.failNextEnroll = null;
      throw e;
    }
    const out = boundFd();
    const inb = boundFd();
    this.pods.set(spec.uid, { spec, outboundPort: out.port, inboundPort: inb.port });
    const netnsCookie = ++this.cookie;
    return {
      uid: spec.uid,
      netnsCookie,
      listeners: { outbound4: out.fd, outbound6: null, inbound4: inb.fd, inbound6: null, hbone4: boundFd().fd, hbone6: null },
      newSocket: async () => null as unknown as number,
      originalDst: () => this.originalDestination,
    };
  }

  async unenroll(uid: string): Promise<void> {
    this.pods.delete(uid);
  }

  async pruneExcept(keep: Set<string>): Promise<number> {
    let n = 0;
    for (const uid of [...this.pods.keys()]) {
      if (!keep.has(uid)) {
        this.pods.delete(uid);
        this.pruned.push(uid);
        n++;
      }
    }
    return n;
  }

  podCounters(): PodCounters | null {
    return { redirected: 3n, failOpen: 1n, failClosedDenied: 0n };
  }

  status(): DatapathStatus {
    return { pinRoot: '/fake', cgroupRoot: '/fake', programs: [], maps: [], stats: { redirect4: 3n } };
  }

  async close(opts: { detach: boolean }): Promise<void> {
    this.closed = opts;
  }
}
