// Outbound HBONE: pooled HTTP/2-over-mTLS sessions per (source pod, source cert, destination identity, address), CONNECT streams on them.

import type { Logger } from '../../telemetry/logger';
import type { Endpoint } from '../connection-tracker';
import { type DialRequest, dialSession, goawayError } from './dial';
import {
  HboneClosedError,
  HboneConnectRefusedError,
  HboneSessionError,
  HboneTimeoutError,
  HboneStreamResetError,
  errMessage,
  hostPort,
} from './errors';
import { ErrorCode, H2PeerSilentError, isInternal } from './h2/constants';
import { type H2Counters, newH2Counters } from './h2/h2-counters';
import { DEFAULT_KEEPALIVE, type KeepaliveTiming } from './h2/session';
import { type H2EngineName, type HboneSession, type HboneStream, h2Engine } from './h2-engine';
import { HBONE_REASON_HEADER, formatAuthority } from './protocol';
import { clientTlsError } from './tls';

export interface HboneConnectRequest extends DialRequest {
  /** The source pod's uid: sessions are never shared between pods, even with the same identity. */
  sourcePod: string;
  /** Where the tunnel goes: the CONNECT `:authority` (destination pod IP and application port). */
  target: Endpoint;
  /** Extra CONNECT request headers (e.g. the detected protocol). */
  headers?: Record<string, string>;
}

export interface HboneConnection {
  /** The CONNECT stream after the server's 200, carrying the tunnelled bytes. */
  stream: HboneStream;
  /** True when the stream went on a session that was already open (no dial was waited for). */
  reused: boolean;
  /** The pool's id of the session carrying the stream. */
  sessionId: number;
}

export interface HboneClientPoolOptions {
  /** A session with no streams for this long is closed. Default 60 s. */
  idleTimeoutMs?: number;
  /** Bound on the dial (socket, TCP, TLS, HTTP/2 SETTINGS) and, separately, on the CONNECT answer. Default 10 s. */
  connectTimeoutMs?: number;
  /** Streams per session even when the server allows more (the server's SETTINGS lower it). Default 100. */
  maxStreamsPerSession?: number;
  /** HTTP/2 receive windows we advertise: per stream (default 4 MiB) and per session (default 16 MiB). */
  streamWindow?: number;
  connectionWindow?: number;
  /**
   * Liveness of pooled sessions, idle ones included, so no new stream lands on a dead one: a PING after `idleMs`
   * without a byte from the server, the session ends after `timeoutMs` more of silence. Default 10 s + 10 s;
   * null: none.
   */
  keepalive?: KeepaliveTiming | null;
  /** The HTTP/2 implementation (see h2-engine.ts). Default `nodemesh`. */
  h2?: H2EngineName;
  log?: Logger;
}

export interface HboneSessionStats {
  id: number;
  key: string;
  address: string;
  streams: number;
  maxStreams: number;
  draining: boolean;
}

export interface HboneClientPoolStats {
  /** Sessions currently pooled (accepting or draining). */
  sessions: number;
  activeStreams: number;
  pendingDials: number;
  /** Totals since the pool was made. */
  sessionsOpened: number;
  dialFailures: number;
  streamsOpened: number;
  streamsReused: number;
  connectRefused: number;
  /** Sessions ended because the server sent nothing, not even a PING answer, within the keepalive. */
  silentPeers: number;
  /** The HTTP/2 engine the pool's sessions run on. */
  engine: H2EngineName;
  /** What the servers' HTTP/2 sessions did that we counted against them (our engine only). */
  h2: H2Counters;
  perSession: HboneSessionStats[];
}

/** The pool key: a rotated source certificate (new serial) never gets an old session for new streams. */
export function poolKey(r: Pick<HboneConnectRequest, 'sourcePod' | 'source' | 'expectedServerId' | 'address'>): string {
  return `${r.sourcePod}|${r.source.spiffeId}|${r.source.serial}|${r.expectedServerId}|${hostPort(r.address)}`;
}

class PooledSession {
  active = 0;
  draining = false;
  /** Why the session failed or was refused (GOAWAY with an error code, TLS alert): streams on it report this. */
  failure: Error | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: number,
    readonly key: string,
    readonly address: string,
    readonly session: HboneSession,
    public maxStreams: number,
    private readonly idleTimeoutMs: number,
    private readonly onIdle: (s: PooledSession) => void,
  ) {}

  hasRoom(): boolean {
    return !this.draining && !this.session.closed && !this.session.destroyed && this.active < this.maxStreams;
  }

  take(): void {
    this.active++;
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  release(): void {
    this.active--;
    if (this.active > 0) return;
    if (this.draining) {
      if (!this.session.closed) this.session.close();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.active === 0) this.onIdle(this);
    }, this.idleTimeoutMs);
    this.idleTimer.unref();
  }

  stopTimer(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

interface PoolEntry {
  sessions: PooledSession[];
  /** The one dial in flight for this key; concurrent connects wait on it instead of dialling again. */
  pending: Promise<PooledSession> | null;
}

// Errors after which a stream is retried once on another session: the session went away under us.
const retryable = new WeakSet<Error>();
const MAX_DIALS_PER_CONNECT = 3;

export class HboneClientPool {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly live = new Set<PooledSession>();
  private readonly opts: Required<Omit<HboneClientPoolOptions, 'log'>>;
  private readonly h2Counters = newH2Counters();
  private readonly log: Logger | undefined;
  private nextId = 1;
  private closed = false;
  private totals = { sessionsOpened: 0, dialFailures: 0, streamsOpened: 0, streamsReused: 0, connectRefused: 0, silentPeers: 0 };

  constructor(options: HboneClientPoolOptions = {}) {
    this.opts = {
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      maxStreamsPerSession: options.maxStreamsPerSession ?? 100,
      streamWindow: options.streamWindow ?? 4 * 1024 * 1024,
      connectionWindow: options.connectionWindow ?? 16 * 1024 * 1024,
      keepalive: options.keepalive === undefined ? DEFAULT_KEEPALIVE : options.keepalive,
      h2: options.h2 ?? 'nodemesh',
    };
    this.log = options.log;
  }

  /**
   * Opens a CONNECT stream to `req.target` through the destination's HBONE server, reusing a pooled session
   * with room when there is one. Resolves only after the server answered 200; rejects with an NM_HBONE_*
   * error otherwise (HboneConnectRefusedError carries the status and the server's reason).
   */
  async connect(req: HboneConnectRequest): Promise<HboneConnection> {
    const key = poolKey(req);
    for (let attempt = 0; ; attempt++) {
      const { ps, reused } = await this.acquire(key, req);
      try {
        const stream = await this.open(ps, req);
        this.totals.streamsOpened++;
        if (reused) this.totals.streamsReused++;
        return { stream, reused, sessionId: ps.id };
      } catch (err) {
        // A pooled session can receive GOAWAY between our pick and the request, and a fresh one can be accepted by
        // a server that is stopping (an agent handing over): a stream the server never processed is safe to send
        // again (RFC 9113 section 8.7), on another session.
        if (attempt < 2 && retryable.has(err as Error)) continue;
        throw err;
      }
    }
  }

  stats(): HboneClientPoolStats {
    let activeStreams = 0;
    let pendingDials = 0;
    const perSession: HboneSessionStats[] = [];
    for (const ps of this.live) {
      activeStreams += ps.active;
      perSession.push({ id: ps.id, key: ps.key, address: ps.address, streams: ps.active, maxStreams: ps.maxStreams, draining: ps.draining });
    }
    for (const e of this.entries.values()) if (e.pending !== null) pendingDials++;
    return { sessions: this.live.size, activeStreams, pendingDials, ...this.totals, engine: this.opts.h2, h2: structuredClone(this.h2Counters), perSession };
  }

  /** Stops new streams; open streams finish, then their sessions close. Resolves when all sessions closed. */
  async close(): Promise<void> {
    this.closed = true;
    const waits: Promise<void>[] = [];
    for (const ps of this.live) {
      ps.draining = true;
      ps.stopTimer();
      if (!ps.session.closed && !ps.session.destroyed) {
        waits.push(new Promise<void>((resolve) => ps.session.once('close', () => resolve())));
        ps.session.close();
      }
    }
    this.entries.clear();
    await Promise.all(waits);
  }

  /** Closes every session now, resetting open streams. */
  destroy(): void {
    this.closed = true;
    for (const ps of this.live) {
      ps.stopTimer();
      ps.session.destroy();
    }
    this.entries.clear();
  }

  /** A session slot for `key`: an open session with room, else the shared pending dial, else a new dial. */
  private async acquire(key: string, req: HboneConnectRequest): Promise<{ ps: PooledSession; reused: boolean }> {
    let reused = true;
    for (let dials = 0; ; ) {
      if (this.closed) throw new HboneClosedError('HBONE client pool');
      let entry = this.entries.get(key);
      if (entry === undefined) {
        entry = { sessions: [], pending: null };
        this.entries.set(key, entry);
      }
      const ps = entry.sessions.find((s) => s.hasRoom());
      if (ps !== undefined) {
        // The slot is reserved synchronously, so waiters woken by one dial never oversubscribe a session.
        ps.take();
        return { ps, reused };
      }
      reused = false;
      let pending = entry.pending;
      if (pending === null) {
        if (dials++ >= MAX_DIALS_PER_CONNECT) {
          throw new HboneSessionError(hostPort(req.address), `sessions closed right after ${MAX_DIALS_PER_CONNECT} dials`);
        }
        const e = entry;
        pending = e.pending = this.dial(key, e, req).finally(() => {
          e.pending = null;
        });
      }
      const dialled = await pending;
      // A session refused right after it opened (GOAWAY with a reason): report that instead of dialling again.
      if (dialled.failure !== null && !dialled.hasRoom()) throw dialled.failure;
    }
  }

  private async dial(key: string, entry: PoolEntry, req: HboneConnectRequest): Promise<PooledSession> {
    const address = hostPort(req.address);
    let adopted: PooledSession | null = null;
    try {
      await dialSession(req, {
        timeoutMs: this.opts.connectTimeoutMs,
        streamWindow: this.opts.streamWindow,
        connectionWindow: this.opts.connectionWindow,
        keepalive: this.opts.keepalive,
        engine: h2Engine(this.opts.h2),
        counters: this.h2Counters,
        adopt: (session) => (adopted = this.adopt(key, entry, req, session)),
      });
      return adopted!;
    } catch (err) {
      this.totals.dialFailures++;
      this.log?.debug({ err, address, source: req.source.spiffeId }, 'HBONE dial failed');
      throw err;
    }
  }

  private adopt(key: string, entry: PoolEntry, req: HboneConnectRequest, session: HboneSession): PooledSession {
    const address = hostPort(req.address);
    const remoteMax = session.remoteSettings.maxConcurrentStreams;
    const ps = new PooledSession(
      this.nextId++,
      key,
      address,
      session,
      Math.min(this.opts.maxStreamsPerSession, remoteMax),
      this.opts.idleTimeoutMs,
      (idle) => {
        this.drop(idle);
        idle.session.close();
      },
    );
    this.totals.sessionsOpened++;
    this.live.add(ps);
    if (this.entries.get(key) !== entry) this.entries.set(key, entry);
    entry.sessions.push(ps);
    session.on('remoteSettings', (s: { maxConcurrentStreams: number }) => {
      ps.maxStreams = Math.min(this.opts.maxStreamsPerSession, s.maxConcurrentStreams);
    });
    session.on('goaway', (code: number, _last: number, debug: Buffer) => {
      if (code !== ErrorCode.NO_ERROR) ps.failure ??= goawayError(address, req.source.spiffeId, code, debug);
      this.log?.debug({ address, session: ps.id, code }, 'HBONE session got GOAWAY; no new streams on it');
      this.drop(ps);
    });
    session.on('error', (err: Error) => {
      ps.failure ??= clientTlsError(address, req.source.spiffeId, err);
      if (err instanceof H2PeerSilentError) {
        this.totals.silentPeers++;
        this.log?.warn({ address, session: ps.id, source: req.source.spiffeId }, `HBONE session ended: ${err.message}`);
      } else if (isInternal(err)) this.log?.error({ err, address, session: ps.id }, 'HBONE session failed on an internal error');
      else this.log?.debug({ err, address, session: ps.id }, 'HBONE session failed');
      this.drop(ps);
    });
    session.on('close', () => {
      this.drop(ps);
      this.live.delete(ps);
    });
    if (this.closed) {
      ps.draining = true;
      session.close();
    }
    // Until the first stream takes it, the session idles like any other.
    ps.take();
    ps.release();
    return ps;
  }

  /** Takes a session out of the pool for new streams; streams already on it continue. */
  private drop(ps: PooledSession): void {
    ps.draining = true;
    ps.stopTimer();
    const entry = this.entries.get(ps.key);
    if (entry === undefined) return;
    entry.sessions = entry.sessions.filter((s) => s !== ps);
    if (entry.sessions.length === 0 && entry.pending === null) this.entries.delete(ps.key);
  }

  private open(ps: PooledSession, req: HboneConnectRequest): Promise<HboneStream> {
    const target = formatAuthority(req.target);
    return new Promise((resolve, reject) => {
      let stream: HboneStream;
      try {
        // Pseudo-headers first (RFC 9113 §8.3).
        stream = ps.session.request({ ':method': 'CONNECT', ':authority': target, ...req.headers });
      } catch (err) {
        ps.release();
        const e = new HboneSessionError(ps.address, `cannot open a stream: ${errMessage(err)}`, err);
        retryable.add(e);
        reject(ps.failure ?? e);
        return;
      }
      let answered = false;
      stream.once('close', () => {
        ps.release();
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        const code = stream.rstCode ?? 0;
        let e: Error;
        if (stream.error !== null) e = new HboneSessionError(ps.address, `CONNECT to ${target} failed: ${stream.error.message}`, stream.error);
        else if (code !== 0) e = new HboneStreamResetError(code);
        else e = new HboneSessionError(ps.address, `CONNECT to ${target} closed before the server answered`);
        // REFUSED_STREAM (or a GOAWAY that left the stream out) means the server never processed it.
        if (code === ErrorCode.REFUSED_STREAM || ps.session.destroyed) retryable.add(e);
        reject(ps.failure ?? e);
      });
      const timer = setTimeout(() => {
        if (answered) return;
        answered = true;
        stream.reset(ErrorCode.CANCEL);
        reject(new HboneTimeoutError(ps.address, `CONNECT to ${target}`, this.opts.connectTimeoutMs));
      }, this.opts.connectTimeoutMs);
      stream.once('response', (headers: Record<string, string>) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        const status = Number(headers[':status']);
        if (status === 200) {
          resolve(stream);
          return;
        }
        this.totals.connectRefused++;
        stream.reset(ErrorCode.NO_ERROR);
        reject(new HboneConnectRefusedError(target, ps.address, req.expectedServerId, status, headers[HBONE_REASON_HEADER] ?? null));
      });
    });
  }
}
