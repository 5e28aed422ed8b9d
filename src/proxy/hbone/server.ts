// Inbound HBONE: TLS 1.3 + HTTP/2 on a pod's 15008 fd, client SPIFFE ID from its certificate, CONNECT streams to a handler.

import net from 'node:net';
import tls from 'node:tls';
import type { CertBundle } from '../../identity/types';
import { CountedLog } from '../../telemetry/counted-log';
import type { Logger } from '../../telemetry/logger';
import type { Endpoint } from '../connection-tracker';
import { HBONE_PEER_HEADER, parsePeerMeta, type PeerMeta } from './peer-meta';
import { HBONE_DETECTED_HEADER, HBONE_REASON_HEADER, parseAuthority, refusalFrames } from './protocol';
import { HboneClosedError, errMessage } from './errors';
import { ErrorCode, H2PeerSilentError, isInternal } from './h2/constants';
import { type H2Counters, newH2Counters } from './h2/h2-counters';
import { PeerBudget } from './h2/peer-budget';
import { DEFAULT_KEEPALIVE, type KeepaliveTiming } from './h2/session';
import { type H2Engine, type H2EngineName, type HboneSession, type HboneStream, type Headers, h2Engine } from './h2-engine';
import { HandshakeLimiter, type HandshakeGate, type HandshakeRefusal } from './handshake-limits';
import { HBONE_ALPN, clientVerdict, contextOptions, serverTlsReason } from './tls';

export interface HboneConnectContext {
  /** The client's SPIFFE ID, from the single `spiffe://` URI SAN of its verified certificate. */
  peerId: string;
  /** The TCP peer of the session (the source pod's IP and ephemeral port). */
  peerAddress: Endpoint;
  /** Where the session arrived (this pod's IP and 15008). */
  localAddress: Endpoint;
  /** The CONNECT `:authority`: where the client wants to go. */
  authority: Endpoint;
  /** The source agent's detection result for an undeclared port, when it sent one. */
  detected: 'tcp' | 'http1' | 'http2' | null;
  /** The calling pod as its agent described it (workload, app, version), when it did and it holds. */
  peer: PeerMeta | null;
  /** The tunnel. Relay it only after answering 200. */
  stream: HboneStream;
}

/**
 * Answers the CONNECT: 200 opens the tunnel; anything else (403 denied, 503 upstream refused, …) ends the
 * stream with that status and `reason` in the `x-nodemesh-reason` header. Only the first call counts; calls
 * after the client went away are ignored.
 */
export type HboneRespond = (status: number, reason?: string) => void;

/**
 * Called once per well-formed CONNECT stream from an authenticated client. It must call `respond` exactly
 * once; if it throws or its promise rejects before that, the client gets 500.
 */
export type HboneConnectHandler = (ctx: HboneConnectContext, respond: HboneRespond) => void | Promise<void>;

export interface HboneServerOptions {
  /** The pod's current key and chain; read at start and on every `updateIdentity()`. */
  identity: () => CertBundle;
  /** Roots that client chains must verify against; read with `identity`. */
  trustBundle: () => string[];
  onConnect: HboneConnectHandler;
  /** Advertised SETTINGS_MAX_CONCURRENT_STREAMS. Default 100. */
  maxConcurrentStreams?: number;
  /** HTTP/2 receive windows: per stream (default 4 MiB) and per session (default 16 MiB). */
  streamWindow?: number;
  connectionWindow?: number;
  /** A TCP connection that has not finished the TLS handshake by then is closed. Default 10 s. */
  handshakeTimeoutMs?: number;
  /**
   * Admission of TLS handshakes, shared by a pod's listeners (and, through its limiter, by every pod of the
   * thread): over a bound, a connection is reset at accept. Default: a gate of its own with the default limits.
   */
  handshakeGate?: HandshakeGate;
  /** A session without streams and without frames for this long is closed. Default 10 min. */
  idleTimeoutMs?: number;
  /**
   * Liveness while tunnels are open: a PING after `idleMs` without a byte from the client, the session and its
   * tunnels end after `timeoutMs` more of silence. Idle sessions are the client's to check. Default 10 s + 10 s;
   * null: none.
   */
  keepalive?: KeepaliveTiming | null;
  /** The HTTP/2 implementation (see h2-engine.ts). Default `nodemesh`. */
  h2?: H2EngineName;
  /**
   * Unread bytes all sessions of one client identity may hold for slow readers, and streams per second it may
   * reset or make us reset, together. Default 64 MiB and 1000.
   */
  peerLimits?: { maxHeldBytes: number; resetsPerSecond: number };
  log?: Logger;
}

export interface HboneServerStats {
  sessions: number;
  activeStreams: number;
  /** Totals since start. */
  sessionsAccepted: number;
  streamsAccepted: number;
  /** TLS handshakes that failed or timed out (the socket is closed either way). */
  handshakeFailures: number;
  /** Of those, handshakes that did not finish within the handshake timeout. */
  handshakeTimeouts: number;
  /** TLS handshakes under way now. */
  handshakesInProgress: number;
  /** Connections reset at accept because a bound on handshakes in progress was reached, by bound. */
  handshakesRejected: Record<HandshakeRefusal, number>;
  /** Clients refused after the handshake: untrusted, expired or missing certificate, no single SPIFFE ID. */
  clientsRefused: number;
  badRequests: number;
  /** Sessions ended (with their tunnels) because the client sent nothing, not even a PING answer, within the keepalive. */
  silentPeers: number;
  /** What clients' HTTP/2 sessions did that we counted against them (our engine only). */
  h2: H2Counters;
}

interface SessionInfo {
  peerId: string;
  peerAddress: Endpoint;
  localAddress: Endpoint;
  streams: number;
}

const KEEPALIVE_MS = 30_000;
/** How long a refused client may take to read the refusal before its socket is destroyed. */
const REFUSAL_LINGER_MS = 5_000;

export class HboneServer {
  /** Accepts, and hands what it admits to `tls` (which never listens itself). */
  private readonly server: net.Server;
  private readonly tls: tls.Server;
  private readonly gate: HandshakeGate;
  /** Handshakes under way, by 4-tuple: their slot is given back when the handshake ends or the socket closes. */
  private readonly handshaking = new Map<string, { socket: net.Socket; release: () => void }>();
  private readonly handshakeLog: CountedLog | undefined;
  private readonly clientLog: CountedLog | undefined;
  private readonly sessions = new Map<HboneSession, SessionInfo>();
  private readonly engine: H2Engine;
  private readonly h2Counters = newH2Counters();
  /** One budget per client identity with sessions open, shared by those sessions. */
  private readonly peers = new Map<string, { budget: PeerBudget; sessions: number }>();
  private readonly log: Logger | undefined;
  private readonly idleTimeoutMs: number;
  private readonly streamWindow: number;
  private readonly connectionWindow: number;
  private readonly maxConcurrentStreams: number;
  private readonly keepalive: KeepaliveTiming | null;
  private closing = false;
  private totals = { sessionsAccepted: 0, streamsAccepted: 0, handshakeFailures: 0, handshakeTimeouts: 0, clientsRefused: 0, badRequests: 0, silentPeers: 0 };
  private readonly rejected: Record<HandshakeRefusal, number> = { source: 0, pod: 0, total: 0 };

  constructor(private readonly opts: HboneServerOptions) {
    this.log = opts.log;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 600_000;
    this.connectionWindow = opts.connectionWindow ?? 16 * 1024 * 1024;
    this.streamWindow = opts.streamWindow ?? 4 * 1024 * 1024;
    this.maxConcurrentStreams = opts.maxConcurrentStreams ?? 100;
    this.keepalive = opts.keepalive === undefined ? DEFAULT_KEEPALIVE : opts.keepalive;
    this.gate = opts.handshakeGate ?? new HandshakeLimiter().gate();
    this.handshakeLog = opts.log && new CountedLog(opts.log, 'info', 'HBONE handshake refused');
    this.clientLog = opts.log && new CountedLog(opts.log, 'info', 'HBONE client refused');
    this.engine = h2Engine(opts.h2);
    this.tls = tls.createServer({
      ...contextOptions(opts.identity(), opts.trustBundle(), 'server'),
      // The chain is verified during the handshake, but the verdict is ours (see `onSecureConnection`): Node
      // would otherwise drop an untrusted client without a word, leaving its operator guessing.
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: [HBONE_ALPN],
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    });
    this.tls.on('secureConnection', (s: tls.TLSSocket) => {
      this.handshakeDone(s);
      this.onSecureConnection(s);
    });
    this.tls.on('tlsClientError', (err: Error, s: tls.TLSSocket) => this.onHandshakeError(err, s));
    this.server = net.createServer((s) => this.onConnection(s));
  }

  /**
   * Admission: a connection over a bound is reset before any TLS state is made for it, so a flood costs an
   * accept and a close each. An admitted one holds its slot until its handshake ends or its socket closes.
   */
  private onConnection(socket: net.Socket): void {
    const ip = socket.remoteAddress;
    if (ip === undefined) {
      socket.destroy(); // reset by the peer before we got to it
      return;
    }
    const admitted = this.gate.admit(ip);
    if ('refused' in admitted) {
      this.rejected[admitted.refused]++;
      this.handshakeLog?.record(`over the ${admitted.refused} bound`, { peer: `${ip}:${socket.remotePort}` });
      // RST rather than FIN: nothing of the connection stays in this socket's TIME_WAIT
      socket.resetAndDestroy();
      return;
    }
    const key = tupleKey(socket);
    this.handshaking.set(key, { socket, release: admitted.release });
    socket.once('close', () => {
      admitted.release();
      if (this.handshaking.get(key)?.socket === socket) this.handshaking.delete(key);
    });
    // HTTP/2 writes several small frames per message; Nagle would hold the later ones for an ACK.
    socket.setNoDelay(true);
    this.tls.emit('connection', socket);
  }

  private handshakeDone(s: tls.TLSSocket): void {
    const key = tupleKey(s);
    const h = this.handshaking.get(key);
    if (!h) return;
    this.handshaking.delete(key);
    h.release();
  }

  /**
   * Node leaves the socket open after a handshake timeout (and after some errors) once anyone listens for
   * 'tlsClientError': an idle or half-sent ClientHello would hold its TLS state for as long as the peer likes.
   */
  private onHandshakeError(err: Error, s: tls.TLSSocket): void {
    const peer = `${s.remoteAddress}:${s.remotePort}`;
    this.handshakeDone(s);
    s.destroy();
    this.totals.handshakeFailures++;
    const reason = serverTlsReason(err);
    if (reason === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.totals.handshakeTimeouts++;
    this.handshakeLog?.record(reason, { peer });
  }

  /** Starts serving on a listening (or bound) fd made in the pod netns, or on host:port (tests). */
  listen(target: { fd: number } | { host: string; port: number }): Promise<Endpoint> {
    if (this.closing) return Promise.reject(new HboneClosedError('HBONE server'));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(target, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log?.error({ err }, 'HBONE listener failed'));
        resolve(this.address()!);
      });
    });
  }

  address(): Endpoint | null {
    const a = this.server.address() as net.AddressInfo | null;
    return a && typeof a === 'object' ? { ip: a.address, port: a.port } : null;
  }

  /** Re-reads `identity()` and `trustBundle()`; handshakes from now on use them, open sessions keep theirs. */
  updateIdentity(): void {
    this.tls.setSecureContext(contextOptions(this.opts.identity(), this.opts.trustBundle(), 'server'));
  }

  stats(): HboneServerStats {
    let activeStreams = 0;
    for (const info of this.sessions.values()) activeStreams += info.streams;
    return { sessions: this.sessions.size, activeStreams, ...this.totals, handshakesInProgress: this.handshaking.size, handshakesRejected: { ...this.rejected }, h2: structuredClone(this.h2Counters) };
  }

  /** Stops accepting and sends GOAWAY on every session; resolves once open streams ended and sessions closed. */
  async close(): Promise<void> {
    this.closing = true;
    this.closeLogs();
    const waits: Promise<unknown>[] = [new Promise((resolve) => this.server.close(resolve))];
    for (const session of this.sessions.keys()) {
      waits.push(new Promise((resolve) => session.once('close', resolve)));
      session.close();
    }
    await Promise.all(waits);
  }

  /** Closes everything now; open streams are reset. */
  destroy(): void {
    this.closing = true;
    this.closeLogs();
    this.server.close();
    for (const h of this.handshaking.values()) h.socket.destroy();
    for (const session of this.sessions.keys()) session.destroy();
  }

  private closeLogs(): void {
    this.handshakeLog?.close();
    this.clientLog?.close();
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    if (socket.alpnProtocol !== HBONE_ALPN) {
      // Not HBONE (no ALPN offered): do not keep it around.
      socket.destroy();
      return;
    }
    const verdict = clientVerdict(socket);
    if (verdict.ok) {
      socket.setKeepAlive(true, KEEPALIVE_MS);
      this.startSession(socket, verdict.id);
      return;
    }
    this.totals.clientsRefused++;
    this.clientLog?.record(verdict.reason, { peer: `${socket.remoteAddress}:${socket.remotePort}` });
    socket.on('error', () => socket.destroy());
    socket.resume();
    socket.end(refusalFrames(verdict.reason));
    socket.setTimeout(REFUSAL_LINGER_MS, () => socket.destroy());
  }

  /** Only verified clients get here (onSecureConnection): their ID is read once for all streams. */
  private startSession(socket: tls.TLSSocket, peerId: string): void {
    const peer = this.peerBudget(peerId);
    const session = this.engine.server(socket, {
      streamWindow: this.streamWindow,
      connectionWindow: this.connectionWindow,
      maxConcurrentStreams: this.maxConcurrentStreams,
      keepalive: this.keepalive ? { ...this.keepalive, whileIdle: false } : undefined,
      counters: this.h2Counters,
      peerBudget: peer.budget,
    });
    const info: SessionInfo = {
      peerId,
      peerAddress: { ip: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
      localAddress: { ip: socket.localAddress ?? '', port: socket.localPort ?? 0 },
      streams: 0,
    };
    this.sessions.set(session, info);
    this.totals.sessionsAccepted++;
    session.on('error', (err) => {
      // A fault of ours (a handler threw) is an error; a peer breaking the protocol or going away is not.
      if (err instanceof H2PeerSilentError) {
        this.totals.silentPeers++;
        this.log?.warn({ peer: info.peerAddress, client: info.peerId }, `HBONE session ended with its tunnels: ${err.message}`);
      } else if (isInternal(err)) this.log?.error({ err, peer: info.peerAddress }, 'HBONE session failed on an internal error');
      else this.log?.debug({ err, peer: info.peerAddress }, 'HBONE session failed');
    });
    session.on('close', () => {
      this.sessions.delete(session);
      if (--peer.sessions === 0) this.peers.delete(peerId);
    });
    session.on('stream', (stream: HboneStream, headers: Headers) => this.onStream(info, stream, headers));
    socket.setTimeout(this.idleTimeoutMs, () => {
      if (session.activeStreams === 0) session.close();
    });
    if (this.closing) session.close();
  }

  private peerBudget(peerId: string): { budget: PeerBudget; sessions: number } {
    let peer = this.peers.get(peerId);
    if (peer === undefined) {
      const limits = this.opts.peerLimits ?? { maxHeldBytes: 64 * 1024 * 1024, resetsPerSecond: 1000 };
      peer = { budget: new PeerBudget(limits.maxHeldBytes, limits.resetsPerSecond), sessions: 0 };
      this.peers.set(peerId, peer);
    }
    peer.sessions++;
    return peer;
  }

  private onStream(info: SessionInfo, stream: HboneStream, headers: Headers): void {
    if (this.closing) {
      stream.reset(ErrorCode.REFUSED_STREAM);
      return;
    }
    const method = headers[':method'];
    if (method !== 'CONNECT') {
      this.badRequest(stream, `method ${method ?? '(none)'} is not allowed: HBONE accepts only CONNECT`);
      return;
    }
    const raw = headers[':authority'];
    const authority = parseAuthority(raw);
    if (authority === null) {
      this.badRequest(stream, `malformed :authority ${JSON.stringify(raw ?? '')}: expected IP:port (IPv6 in brackets)`);
      return;
    }
    this.totals.streamsAccepted++;
    info.streams++;
    stream.once('close', () => info.streams--);

    let responded = false;
    const respond: HboneRespond = (status, reason) => {
      if (responded || stream.closed) return;
      responded = true;
      if (status === 200) stream.respond({ ':status': '200' });
      else answer(stream, status, reason);
    };
    const failed = (err: unknown): void => {
      this.log?.error({ err, peer: info.peerAddress, authority: raw }, 'HBONE CONNECT handler failed');
      if (!responded) respond(500, `internal error: ${errMessage(err)}`);
      else stream.reset(ErrorCode.INTERNAL_ERROR);
    };
    const det = headers[HBONE_DETECTED_HEADER];
    const detected = det === 'tcp' || det === 'http1' || det === 'http2' ? det : null;
    const peer = parsePeerMeta(headers[HBONE_PEER_HEADER], info.peerId);
    const ctx: HboneConnectContext = { peerId: info.peerId, peerAddress: info.peerAddress, localAddress: info.localAddress, authority, stream, detected, peer };
    try {
      const r = this.opts.onConnect(ctx, respond);
      if (r instanceof Promise) r.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  private badRequest(stream: HboneStream, reason: string): void {
    this.totals.badRequests++;
    answer(stream, 400, reason);
  }
}

/** Identifies a connection among those open on one listener (the TLS socket reports its TCP socket's addresses). */
function tupleKey(s: net.Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

/** A final answer: status and reason, END_STREAM, then RST_STREAM(NO_ERROR) so the client need not finish. */
function answer(stream: HboneStream, status: number, reason?: string): void {
  const headers: Headers = { ':status': String(status) };
  if (reason) headers[HBONE_REASON_HEADER] = reason.replace(/[^\x20-\x7e]/g, '?');
  stream.respond(headers, true);
  stream.reset(ErrorCode.NO_ERROR);
}
