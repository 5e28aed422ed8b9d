// Pooled upstream connections for L7, per (source pod, endpoint, HTTP version): HTTP/1.1 through undici
// pools whose connections we dial ourselves (pod netns socket or HBONE tunnel), HTTP/2 through Node's
// http2 client sessions over the same kind of connection. A pod's requests reuse them across its client
// connections; pools of different pods are never shared (their sockets leave from different netns).

import http2 from 'node:http2';
import type { Pool as UndiciPool } from 'undici';
import type { HttpVersion } from '../../state/routes';
import type { Workload } from '../../state/workloads';
import type { PodSockets, ProxyContext } from '../context';
import type { Target } from '../forward';
import { dialUpstream } from './upstream-dial';

/**
 * undici's Pool, the one part of undici the agent uses, loaded alone: the package's entry also loads fetch,
 * WebSocket, EventSource, the cache and cookie APIs and the Node internals they need (95 modules against 23).
 * In a process, after GC: heap +3.2 MB against +1.5 MB, RSS +17 MB against +13 MB. The same class
 * (test/unit/agent-footprint.test.ts), so an undici release that moves it fails there.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Pool = require('undici/lib/dispatcher/pool') as typeof UndiciPool;

export interface UpstreamPoolOptions {
  /** An HTTP/1.1 connection idle this long is closed (undici's keepAliveTimeout). Default 4 s: shorter than
   *  Node's and most servers' 5 s, so we close first and never reuse a connection the server is closing. */
  idleConnectionMs?: number;
  /** A pool or session with no connection and no request for this long is dropped. Default 60 s. */
  idlePoolMs?: number;
  /** Bound on pools plus sessions; past it, idle ones are dropped first, then the least recently used. */
  maxPools?: number;
}

interface H1Entry {
  pool: UndiciPool;
  pod: string;
  lastUsed: number;
  limits: string;
}

interface H2Entry {
  session: Promise<http2.ClientHttp2Session>;
  pod: string;
  lastUsed: number;
  /** Resolved session, for the sweeper. */
  live: http2.ClientHttp2Session | null;
  /** Streams open on it. */
  active: number;
  /** DestinationRule idleTimeout: closed this long after its last stream ended; null: the sweeper's (idlePoolMs). */
  idleMs: number | null;
  /** Streams opened on the session so far (DestinationRule maxRequestsPerConnection retires it). */
  requests: number;
  idleTimer: NodeJS.Timeout | null;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function key(pod: Workload, t: Target): string {
  return `${pod.uid}|${t.via}|${t.ip}|${t.port}|${t.from ?? ''}`;
}

/** What a cluster's connection-pool policy asks of its upstream connections (DestinationRule connectionPool): all three of an HTTP/1.1 pool, the last two of an HTTP/2 session. */
export interface PoolLimits {
  maxConnections?: number;
  maxRequestsPerConnection?: number;
  idleTimeoutMs?: number;
}

function limitsKey(l: PoolLimits | undefined): string {
  return l ? `${l.maxConnections ?? ''}/${l.maxRequestsPerConnection ?? ''}/${l.idleTimeoutMs ?? ''}` : '';
}

export class UpstreamPools {
  private readonly h1 = new Map<string, H1Entry>();
  private readonly h2 = new Map<string, H2Entry>();
  private readonly idleConnectionMs: number;
  private readonly idlePoolMs: number;
  private readonly maxPools: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly ctx: ProxyContext,
    opts: UpstreamPoolOptions = {},
  ) {
    this.idleConnectionMs = opts.idleConnectionMs ?? 4000;
    this.idlePoolMs = opts.idlePoolMs ?? 60_000;
    this.maxPools = opts.maxPools ?? 4096;
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.idlePoolMs, 30_000));
    this.sweeper.unref();
  }

  /** The HTTP/1.1 pool for `target` from `pod`. Its connections are dialled on demand. */
  h1Pool(pod: Workload, sockets: PodSockets, target: Target, connectTimeoutMs: number, detected?: HttpVersion, limits?: PoolLimits): UndiciPool {
    const k = key(pod, target);
    const cur = this.h1.get(k);
    const lk = limitsKey(limits);
    if (cur && cur.limits === lk) {
      cur.lastUsed = Date.now();
      return cur.pool;
    }
    // New limits from a config push: the old pool finishes what it carries and closes.
    if (cur) this.closeH1(k, cur);
    this.makeRoom();
    const idle = limits?.idleTimeoutMs ?? this.idleConnectionMs;
    const host = target.ip.includes(':') ? `[${target.ip}]` : target.ip;
    const pool = new Pool(`http://${host}:${target.port}`, {
      connect: (_opts, cb) => {
        dialUpstream(this.ctx, pod, sockets, target, connectTimeoutMs, detected).then(
          (s) => cb(null, s as unknown as import('node:net').Socket),
          (err: Error) => cb(err, null),
        );
      },
      pipelining: 1,
      connections: limits?.maxConnections ?? null,
      maxRequestsPerClient: limits?.maxRequestsPerConnection,
      keepAliveTimeout: idle,
      keepAliveMaxTimeout: idle,
      // Timeouts are route policy (the timeout layer), not the pool's: long polls and streams are legitimate.
      headersTimeout: 0,
      bodyTimeout: 0,
      strictContentLength: true,
    });
    this.h1.set(k, { pool, pod: pod.uid, lastUsed: Date.now(), limits: lk });
    return pool;
  }

  /**
   * Opens one request stream to `target` from `pod` on the pooled HTTP/2 session (h2c prior knowledge inside
   * the connection), dialling the session first when there is none.
   */
  async h2Request(
    pod: Workload,
    sockets: PodSockets,
    target: Target,
    connectTimeoutMs: number,
    headers: http2.OutgoingHttpHeaders,
    opts: http2.ClientSessionRequestOptions,
    detected?: HttpVersion,
    limits?: PoolLimits,
  ): Promise<http2.ClientHttp2Stream> {
    const k = key(pod, target);
    const entry = this.h2Entry(k, pod, sockets, target, connectTimeoutMs, detected);
    const session = await entry.session;
    const stream = session.request(headers, opts);
    // The latest policy applies (a push may change it while the session lives).
    entry.idleMs = limits?.idleTimeoutMs ?? null;
    entry.requests++;
    // Its last request: later ones get a new session; this one closes once what it carries is done (closing it
    // now would cancel the stream just opened, which Node has not sent yet).
    if (limits?.maxRequestsPerConnection !== undefined && entry.requests >= limits.maxRequestsPerConnection && this.h2.get(k) === entry) this.h2.delete(k);
    entry.active++;
    entry.lastUsed = Date.now();
    if (entry.idleTimer !== null) {
      clearTimeout(entry.idleTimer);
      entry.idleTimer = null;
    }
    stream.once('close', () => {
      entry.active--;
      entry.lastUsed = Date.now();
      if (entry.active > 0) return;
      if (this.h2.get(k) !== entry) this.closeH2(k, entry);
      else this.closeWhenIdle(k, entry);
    });
    return stream;
  }

  /** Closes `entry`'s session once it has carried no stream for its idleMs (HTTP/1.1 pools have undici's keep-alive timer). */
  private closeWhenIdle(k: string, entry: H2Entry): void {
    if (entry.idleTimer !== null) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    if (entry.idleMs === null) return;
    const left = entry.lastUsed + entry.idleMs - Date.now();
    if (left <= 0) {
      this.closeH2(k, entry);
      return;
    }
    // Node's timers overflow past 2^31-1 ms (and then fire at once): a longer timeout is waited in parts.
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null;
      if (entry.active === 0 && this.h2.get(k) === entry) this.closeWhenIdle(k, entry);
    }, Math.min(left, MAX_TIMER_MS));
    entry.idleTimer.unref();
  }

  private h2Entry(k: string, pod: Workload, sockets: PodSockets, target: Target, connectTimeoutMs: number, detected: HttpVersion | undefined): H2Entry {
    const cur = this.h2.get(k);
    if (cur && (cur.live === null || (!cur.live.closed && !cur.live.destroyed))) return cur;
    this.makeRoom();
    const entry: H2Entry = { session: null as unknown as Promise<http2.ClientHttp2Session>, pod: pod.uid, lastUsed: Date.now(), live: null, active: 0, idleMs: null, requests: 0, idleTimer: null };
    const forget = (): void => {
      if (this.h2.get(k) === entry) this.h2.delete(k);
    };
    entry.session = dialUpstream(this.ctx, pod, sockets, target, connectTimeoutMs, detected).then(
      (socket) => {
        const host = target.ip.includes(':') ? `[${target.ip}]` : target.ip;
        const session = http2.connect(`http://${host}:${target.port}`, { createConnection: () => socket });
        entry.live = session;
        session.on('error', (err) => this.ctx.log.debug({ err, target }, 'upstream HTTP/2 session error'));
        session.on('goaway', forget);
        session.on('close', forget);
        // Idle sessions are the sweeper's to close; they must not keep the process alive meanwhile.
        session.unref();
        return session;
      },
      (err: unknown) => {
        forget();
        throw err;
      },
    );
    // A failed dial is reported to the request that waits; nobody else awaits this promise.
    entry.session.catch(() => undefined);
    this.h2.set(k, entry);
    return entry;
  }

  /** A pod left: its pools go (requests in flight on them fail). */
  dropPod(uid: string): void {
    for (const [k, e] of this.h1) if (e.pod === uid) this.closeH1(k, e);
    for (const [k, e] of this.h2) if (e.pod === uid) this.closeH2(k, e);
  }

  stats(): { h1Pools: number; h1Connections: number; h2Sessions: number } {
    let conns = 0;
    for (const e of this.h1.values()) conns += e.pool.stats.connected;
    return { h1Pools: this.h1.size, h1Connections: conns, h2Sessions: this.h2.size };
  }

  /** Closes idle HTTP/1.1 connections and HTTP/2 sessions gracefully (drain); busy ones finish first. */
  closeIdle(): void {
    for (const [k, e] of this.h1) if (e.pool.stats.running === 0 && e.pool.stats.pending === 0) this.closeH1(k, e);
    for (const [k, e] of this.h2) this.closeH2(k, e);
  }

  destroy(): void {
    clearInterval(this.sweeper);
    for (const e of this.h1.values()) void e.pool.destroy().catch(() => undefined);
    for (const e of this.h2.values()) e.live?.destroy();
    this.h1.clear();
    this.h2.clear();
  }

  private closeH1(k: string, e: H1Entry): void {
    this.h1.delete(k);
    void e.pool.close().catch(() => undefined);
  }

  private closeH2(k: string, e: H2Entry): void {
    if (this.h2.get(k) === e) this.h2.delete(k);
    if (e.idleTimer !== null) clearTimeout(e.idleTimer);
    e.idleTimer = null;
    e.live?.close();
  }

  private idle(e: H1Entry | H2Entry, now: number): boolean {
    if (now - e.lastUsed < this.idlePoolMs) return false;
    if ('pool' in e) return e.pool.stats.connected === 0 && e.pool.stats.pending === 0 && e.pool.stats.running === 0;
    // A session under a DestinationRule idleTimeout keeps it, longer than idlePoolMs too (HTTP/1.1 pools do).
    return e.active === 0 && e.idleMs === null;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.h1) if (this.idle(e, now)) this.closeH1(k, e);
    for (const [k, e] of this.h2) if (this.idle(e, now)) this.closeH2(k, e);
  }

  /** Keeps the number of pools bounded whatever the destinations: drop the least recently used. */
  private makeRoom(): void {
    if (this.h1.size + this.h2.size < this.maxPools) return;
    this.sweep();
    while (this.h1.size + this.h2.size >= this.maxPools) {
      let oldest: [string, H1Entry | H2Entry, 'h1' | 'h2'] | null = null;
      for (const [k, e] of this.h1) if (!oldest || e.lastUsed < oldest[1].lastUsed) oldest = [k, e, 'h1'];
      for (const [k, e] of this.h2) if (!oldest || e.lastUsed < oldest[1].lastUsed) oldest = [k, e, 'h2'];
      if (!oldest) return;
      if (oldest[2] === 'h1') this.closeH1(oldest[0], oldest[1] as H1Entry);
      else this.closeH2(oldest[0], oldest[1] as H2Entry);
    }
  }
}
