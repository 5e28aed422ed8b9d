// Per-pod pool of pre-created, unconnected upstream sockets, refilled in the background on the netns thread.

import type { NativeBinding, NativeNetnsThread } from './native';

export interface PoolLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Creating a socket inside a pod netns costs a hop to the netns thread (setns + socket + setsockopt) and
 * a trip back through the event loop; keeping a few ready makes the common case synchronous-ish.
 * Sockets in the pool are owned by the pool until handed out; close() closes them.
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
    return this.thread.socket(this.netnsFd, family, this.mark);
  }

  private refill(family: 4 | 6): void {
    while (!this.closed && this.ready[family].length + this.inflight[family] < this.target[family]) {
      this.inflight[family]++;
      this.thread.socket(this.netnsFd, family, this.mark).then(
        (fd) => {
          this.inflight[family]--;
          if (this.closed) this.native.closeFd(fd);
          else this.ready[family].push(fd);
        },
        (err: unknown) => {
          this.inflight[family]--;
          // stop refilling this family: no v6 in the pod, or the netns is gone; take() still tries directly
          this.target[family] = 0;
          if (!this.closed) this.log.warn({ err, uid: this.podUid, family }, 'socket pool refill failed; creating sockets on demand');
        },
      );
    }
  }

  close(): void {
    this.closed = true;
    for (const fam of [4, 6] as const) {
      for (const fd of this.ready[fam].splice(0)) this.native.closeFd(fd);
    }
  }
}
