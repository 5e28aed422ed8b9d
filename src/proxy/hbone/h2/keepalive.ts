// Liveness of an HTTP/2 session's peer: a PING after an idle spell without a byte from it, the end after a further silence.

/** How often a session checks its peer's liveness, and how long an unanswered PING may wait. */
export interface KeepaliveTiming {
  idleMs: number;
  timeoutMs: number;
}

export interface H2Keepalive extends KeepaliveTiming {
  /** Also when no stream is open (a client keeping pooled sessions fit for new streams); else only while streams are open. */
  whileIdle: boolean;
}

export interface KeepaliveHooks {
  streamsOpen(): number;
  gone(): boolean;
  sendPing(): void;
  /** The peer stayed silent past idle + timeout. */
  silent(ms: number): void;
}

/** One timer per session, re-armed each time: a flag set per read (`heard`) is all the data path pays. */
export class Keepalive {
  heard = false;
  pingsSent = 0;
  private timer: NodeJS.Timeout | null = null;
  private pingOutstanding = false;

  constructor(
    private readonly timing: H2Keepalive,
    private readonly hooks: KeepaliveHooks,
  ) {
    this.arm(timing.idleMs);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    const { idleMs, timeoutMs, whileIdle } = this.timing;
    this.timer = null;
    if (this.hooks.gone()) return;
    if (this.heard || (!whileIdle && this.hooks.streamsOpen() === 0 && !this.pingOutstanding)) {
      this.heard = false;
      this.pingOutstanding = false;
      this.arm(idleMs);
      return;
    }
    if (this.pingOutstanding) {
      this.hooks.silent(idleMs + timeoutMs);
      return;
    }
    this.pingOutstanding = true;
    this.pingsSent++;
    this.hooks.sendPing();
    this.arm(timeoutMs);
  }
}
