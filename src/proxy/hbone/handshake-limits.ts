// Bounds on TLS handshakes in progress on pods' 15008: per source address and in all (one event loop's
// share of the node), and per pod. What is over a bound is refused at accept, before any TLS state exists.

/**
 * A handshake in progress holds a TLS socket with OpenSSL's state and buffers (about 35 KB once a partial
 * ClientHello arrived; bench/README.md "Handshake floods"). Without bounds, any pod that can reach a mesh
 * pod's 15008 decides how much of the agent's memory is spent that way.
 */
export interface HandshakeLimits {
  /** Per source IP, over every pod this thread serves: one pod that floods reaches no further. */
  perSource: number;
  /** Per pod (its IPv4 and IPv6 listeners together): many sources flooding one pod reach no further. */
  perPod: number;
  /** Over every pod this thread serves: the memory bound, whatever the number of sources and pods. */
  total: number;
}

/**
 * Legitimate clients are peer agents, which pool one session per source pod, identities and destination, so a
 * source address has a handful of handshakes in flight with one node, dozens when a pod fans out to many of its
 * pods at once; 64 leaves room for that. 1024 × ~35 KB bounds the memory at about 36 MB per thread.
 */
export const DEFAULT_HANDSHAKE_LIMITS: HandshakeLimits = { perSource: 64, perPod: 256, total: 1024 };

export type HandshakeRefusal = 'source' | 'pod' | 'total';

/** How pods' HBONE servers treat handshakes (agent flags `--hbone-handshake-*`). */
export interface HandshakeOptions {
  limits?: HandshakeLimits;
  /** A connection that has not finished its TLS handshake by then is closed. Default 10 s. */
  timeoutMs?: number;
}

export interface FloodWatch {
  /** Called once a burst of at least `connections` connections (admitted or refused) is over. */
  over: (connections: number) => void;
  /** Default 1000. */
  connections?: number;
  /** Over means: none in progress and none new for this long. Default 2 s. */
  quietMs?: number;
}

/**
 * One event loop's count of handshakes in progress, by source address and in all; gives each pod its gate.
 * With a flood watch, it also says when a burst of connections is over: what such a burst leaves behind in
 * V8's and glibc's heaps is not handed back to the kernel on its own (bench/README.md "Handshake floods").
 */
export class HandshakeLimiter {
  readonly limits: HandshakeLimits;
  private readonly bySource = new Map<string, number>();
  private inProgress = 0;
  /** Connections seen since the last burst ended (or since start). */
  private seen = 0;
  private watching: NodeJS.Timeout | undefined;

  constructor(limits: HandshakeLimits = DEFAULT_HANDSHAKE_LIMITS, private readonly flood?: FloodWatch) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`handshake limit ${k} must be a positive integer, got ${v}`);
    }
    this.limits = limits;
  }

  /** Stops watching for the end of a burst. */
  close(): void {
    clearInterval(this.watching);
    this.watching = undefined;
  }

  /** The gate of one pod; its listeners share it. */
  gate(): HandshakeGate {
    return new HandshakeGate(this);
  }

  /** Handshakes in progress on every pod of this thread. */
  get size(): number {
    return this.inProgress;
  }

  /** @internal (HandshakeGate) */
  take(source: string, podCount: number): HandshakeRefusal | null {
    if (++this.seen === (this.flood?.connections ?? 1000) && this.flood) this.watch(this.flood);
    const n = this.bySource.get(source) ?? 0;
    if (n >= this.limits.perSource) return 'source';
    if (podCount >= this.limits.perPod) return 'pod';
    if (this.inProgress >= this.limits.total) return 'total';
    this.bySource.set(source, n + 1);
    this.inProgress++;
    return null;
  }

  /** Checks every `quietMs` whether the burst is over; a check that saw new connections waits for the next. */
  private watch(flood: FloodWatch): void {
    let last = this.seen;
    this.watching = setInterval(() => {
      if (this.seen !== last || this.inProgress > 0) {
        last = this.seen;
        return;
      }
      this.close();
      const connections = this.seen;
      this.seen = 0;
      flood.over(connections);
    }, flood.quietMs ?? 2000);
    this.watching.unref();
  }

  /** @internal (HandshakeGate) */
  give(source: string): void {
    const n = this.bySource.get(source) ?? 0;
    // entries leave with their last handshake: the map holds only sources with one in progress
    if (n <= 1) this.bySource.delete(source);
    else this.bySource.set(source, n - 1);
    this.inProgress--;
  }
}

/** A pod's admission to its 15008: `admit` answers a release function, or why the connection is refused. */
export class HandshakeGate {
  private inProgress = 0;

  constructor(private readonly limiter: HandshakeLimiter) {}

  /** Handshakes in progress on this pod. */
  get size(): number {
    return this.inProgress;
  }

  /** Takes a slot for a handshake from `sourceIp`; the returned function gives it back (once, however often called). */
  admit(sourceIp: string): { release: () => void } | { refused: HandshakeRefusal } {
    const source = sourceIp.startsWith('::ffff:') ? sourceIp.slice(7) : sourceIp;
    const refused = this.limiter.take(source, this.inProgress);
    if (refused) return { refused };
    this.inProgress++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.inProgress--;
        this.limiter.give(source);
      },
    };
  }
}
