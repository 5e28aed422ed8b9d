// Per-pod pool of pre-created, unconnected upstream sockets, refilled in the background on the netns thread.

import { adoptFd, releaseFd } from '../util/fd';
import type { NativeBinding, NativeNetnsThread } from './native';

export interface PoolLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Creating a socket inside a pod netns costs a hop to the netns thread (setns + socket + setsockopt) and
 * a trip back through the event loop; keeping a few ready makes the common case synchronous-ish.
 * Refills come in batches: once fewer than half the target are ready, one job brings the pool back to its
 * target (a job per connection cost 14% of the agent's CPU at 300 new connections/s).
 * Sockets in the pool are owned by the pool until handed out; close() closes them. In a worker thread they
 * are adopted by its fd ledger until a net.Socket takes them (util/fd.ts).
 */
export class SocketPool {
  private readonly ready: { 4: number[]; 6: number[] } = { 4: [], 6: [] };
  private readonly inflight = { 4: 0, 6: 0 };
  private closed = false;

  constructor(
    private readonly native: NativeBinding,
    private readonly thread: NativeNetnsThread,
    private readonly netnsFd: number,
    private readonly mark: number,
    private readonly target: { 4: number; 6: number },
    private readonly log: PoolLogger,
    private readonly podUid: string,
    /** IP_TRANSPARENT sockets, for connecting to the pod's application from a client's address. */
    private readonly transparent = false,
  ) {}

  /** Starts filling both families up to their targets (a family the pod lacks simply stays empty). */
  prefill(): void {
    this.refill(4);
    this.refill(6);
  }

  async take(family: 4 | 6): Promise<number> {
    if (this.closed) throw new Error(`pod ${this.podUid} is no longer enrolled`);
    const fd = this.ready[family].shift();
    this.refill(family);
    if (fd !== undefined) return fd;
    return adoptFd(await this.thread.socket(this.netnsFd, family, this.mark, this.transparent));
  }

  private refill(family: 4 | 6): void {
    const ready = this.ready[family].length;
    const target = this.target[family];
    // One batch at a time, and only below the low-water mark (half the target, rounded up).
    if (this.closed || this.inflight[family] > 0 || ready >= Math.ceil(target / 2)) return;
    const count = target - ready;
    this.inflight[family] = count;
    this.thread.sockets(this.netnsFd, family, this.mark, count, this.transparent).then(
      (fds) => {
        this.inflight[family] = 0;
        if (this.closed) for (const fd of fds) this.native.closeFd(fd);
        else for (const fd of fds) this.ready[family].push(adoptFd(fd));
      },
      (err: unknown) => {
        this.inflight[family] = 0;
        // stop refilling this family: no v6 in the pod, or the netns is gone; take() still tries directly
        this.target[family] = 0;
        if (!this.closed) this.log.warn({ err, uid: this.podUid, family }, 'socket pool refill failed; creating sockets on demand');
      },
    );
  }

  close(): void {
    this.closed = true;
    for (const fam of [4, 6] as const) {
      for (const fd of this.ready[fam].splice(0)) this.native.closeFd(releaseFd(fd));
    }
  }
}
