// Tracks relayed connections: live list for /connections and drain, periodic byte reporting, recent history.

import type { ProxyMetrics, TcpLabels } from '../telemetry/metrics';

export type Direction = 'outbound' | 'inbound';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ConnectionInfo {
  id: number;
  direction: Direction;
  /** uid of the local pod this connection belongs to */
  pod: string;
  /** The client's address as the agent saw it. */
  src: Endpoint;
  /** Where the client meant to go (the original destination). */
  dst: Endpoint;
  startedAt: number;
  labels: TcpLabels;
  /** Live byte counters (client -> server, server -> client), read on demand. */
  bytes: () => { up: number; down: number };
  /** Re-checks authorization after a policy change; closes the connection and returns false when no longer allowed. */
  revalidate?: () => boolean;
}

export interface ClosedConnection {
  id: number;
  direction: Direction;
  pod: string;
  src: string;
  dst: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  responseFlags: string;
  error: string | null;
  closedAt: string;
}

interface Tracked {
  info: ConnectionInfo;
  reportedUp: number;
  reportedDown: number;
}

export class ConnectionTracker {
  private readonly active = new Map<number, Tracked>();
  private readonly recent: ClosedConnection[] = [];
  private nextId = 1;
  private flushTimer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];
  /** Connections accepted and still connecting upstream: not in `active` yet, but a drain must wait for them. */
  private connecting = 0;

  constructor(
    private readonly metrics: ProxyMetrics,
    private readonly now: () => number = Date.now,
    private readonly recentLimit = 256,
  ) {}

  /** Reports byte deltas of long-lived connections every `ms`, as Istio does, instead of only at close. */
  startPeriodicFlush(ms: number): void {
    this.flushTimer = setInterval(() => this.flush(), ms);
    this.flushTimer.unref();
  }

  open(info: Omit<ConnectionInfo, 'id' | 'startedAt'>): ConnectionInfo {
    const full: ConnectionInfo = { ...info, id: this.nextId++, startedAt: this.now() };
    this.active.set(full.id, { info: full, reportedUp: 0, reportedDown: 0 });
    this.metrics.tcpOpened.inc(full.labels);
    this.metrics.activeConnections.inc({ direction: full.direction });
    return full;
  }

  close(id: number, result: { bytesUp: number; bytesDown: number; responseFlags: string; error: string | null }): ClosedConnection | null {
    const t = this.active.get(id);
    if (!t) return null;
    this.active.delete(id);
    const labels = { ...t.info.labels, response_flags: result.responseFlags };
    this.report(labels, result.bytesUp - t.reportedUp, result.bytesDown - t.reportedDown);
    this.metrics.tcpClosed.inc(labels);
    this.metrics.activeConnections.dec({ direction: t.info.direction });
    const closed: ClosedConnection = {
      id,
      direction: t.info.direction,
      pod: t.info.pod,
      src: `${t.info.src.ip}:${t.info.src.port}`,
      dst: `${t.info.dst.ip}:${t.info.dst.port}`,
      bytesUp: result.bytesUp,
      bytesDown: result.bytesDown,
      durationMs: this.now() - t.info.startedAt,
      responseFlags: result.responseFlags,
      error: result.error,
      closedAt: new Date(this.now()).toISOString(),
    };
    this.recent.push(closed);
    if (this.recent.length > this.recentLimit) this.recent.shift();
    if (this.size === 0) this.wakeDrainWaiters();
    return closed;
  }

  /**
   * A connection was accepted and is connecting upstream; call the returned function once it is open (open()) or
   * refused. Until then a drain counts it: ending the runtime under it would fail a connection it accepted.
   */
  connectingStarted(): () => void {
    this.connecting++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.connecting--;
      if (this.size === 0) this.wakeDrainWaiters();
    };
  }

  /** After a policy change: every connection that authorization admitted is checked again. Returns how many closed. */
  revalidateAll(): number {
    let closed = 0;
    for (const t of [...this.active.values()]) if (t.info.revalidate && !t.info.revalidate()) closed++;
    return closed;
  }

  flush(): void {
    for (const t of this.active.values()) {
      const b = t.info.bytes();
      this.report(t.info.labels, b.up - t.reportedUp, b.down - t.reportedDown);
      t.reportedUp = b.up;
      t.reportedDown = b.down;
    }
  }

  private report(labels: TcpLabels, up: number, down: number): void {
    if (up > 0) this.metrics.tcpReceived.inc(labels, up);
    if (down > 0) this.metrics.tcpSent.inc(labels, down);
  }

  /** Open connections, and accepted ones still connecting upstream. */
  get size(): number {
    return this.active.size + this.connecting;
  }

  snapshot(): { active: (Omit<ConnectionInfo, 'bytes' | 'labels' | 'revalidate'> & { security: string; peer: string; bytesUp: number; bytesDown: number })[]; recent: ClosedConnection[] } {
    const active = [...this.active.values()].map(({ info }) => {
      const b = info.bytes();
      return {
        id: info.id,
        direction: info.direction,
        pod: info.pod,
        src: info.src,
        dst: info.dst,
        security: info.labels.connection_security_policy,
        peer: info.labels.reporter === 'destination' ? info.labels.source_principal : info.labels.destination_principal,
        startedAt: info.startedAt,
        bytesUp: b.up,
        bytesDown: b.down,
      };
    });
    return { active, recent: [...this.recent] };
  }

  /** Resolves when no connection is open, or after `deadlineMs`; returns how many were still open. */
  async drain(deadlineMs: number): Promise<number> {
    if (this.size === 0) return 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, deadlineMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.size;
  }

  private wakeDrainWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  stop(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
  }
}
