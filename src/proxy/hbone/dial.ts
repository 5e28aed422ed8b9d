// Opens one HBONE session: a socket from the source pod's netns → TCP to 15008 → TLS 1.3 (mutual, SPIFFE) → HTTP/2.

import net from 'node:net';
import tls from 'node:tls';
import type { CertBundle } from '../../identity/types';
import type { Endpoint } from '../connection-tracker';
import {
  HboneClientRejectedError,
  HboneConnectError,
  HboneProtocolError,
  HboneSessionError,
  HboneSocketError,
  HboneTimeoutError,
  HboneTlsError,
  errMessage,
  hostPort,
} from './errors';
import { ErrorCode } from './h2/constants';
import type { H2Counters } from './h2/h2-counters';
import type { KeepaliveTiming } from './h2/session';
import { type H2Engine, type HboneSession, h2Engine } from './h2-engine';
import { HBONE_ALPN, clientTlsError, contextOptions, spiffeServerCheck } from './tls';
import { socketOnFd } from '../../util/fd';

/** Makes an unconnected TCP socket fd inside the source pod's netns; null means a plain socket (tests). */
export type SocketFactory = (family: 4 | 6) => Promise<number | null>;

export interface DialRequest {
  /** The destination's HBONE address (pod IP, port 15008). */
  address: Endpoint;
  /** What we present: the source workload's key and chain; its `rootsPem` verify the server. */
  source: CertBundle;
  /** The SPIFFE ID the server's certificate must carry. */
  expectedServerId: string;
  newSocket: SocketFactory;
}

export interface DialOptions {
  timeoutMs: number;
  /** HTTP/2 per-stream receive window we advertise. */
  streamWindow: number;
  /** HTTP/2 connection-level receive window. */
  connectionWindow: number;
  /** PINGs on the session once it is up, idle or not (see H2SessionOptions.keepalive); null: none. */
  keepalive: KeepaliveTiming | null;
  /** Which HTTP/2 implementation runs the session. Default: ours. */
  engine?: H2Engine;
  /** Where the session counts resets, floods and timeouts (our engine). */
  counters?: H2Counters;
  /**
   * Called synchronously once the session is usable (server SETTINGS received), before the dial's own
   * listeners come off, so no session event can fall between the two.
   */
  adopt(session: HboneSession, tlsSocket: tls.TLSSocket): void;
}

const KEEPALIVE_MS = 30_000;

function socketFor(fd: number | null): net.Socket {
  // An unconnected fd: reading before connect() would fail with ENOTCONN, so reading starts on connect.
  const socket = socketOnFd(fd, fd === null ? {} : { manualStart: true });
  // HTTP/2 writes several small frames per message; Nagle would hold the later ones for an ACK.
  return socket.setNoDelay(true);
}

/** Resolves with a ready session, or rejects with an NM_HBONE_* error naming the stage that failed. */
export function dialSession(req: DialRequest, opts: DialOptions): Promise<HboneSession> {
  const address = hostPort(req.address);
  const sourceId = req.source.spiffeId;
  return new Promise((resolve, reject) => {
    let stage = 'socket creation';
    let done = false;
    let tcp: net.Socket | null = null;
    let tlsSocket: tls.TLSSocket | null = null;
    let session: HboneSession | null = null;

    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (session !== null) {
        session.on('error', ignore);
        session.destroy();
      }
      tlsSocket?.destroy();
      tcp?.destroy();
      reject(err);
    };
    const onTlsError = (err: Error): void => fail(clientTlsError(address, sourceId, err));
    const timer = setTimeout(() => fail(new HboneTimeoutError(address, stage, opts.timeoutMs)), opts.timeoutMs);

    const startTls = (): void => {
      stage = 'TLS handshake';
      let t: tls.TLSSocket;
      try {
        t = tls.connect({
          socket: tcp!,
          ...contextOptions(req.source, req.source.rootsPem, 'client'),
          ALPNProtocols: [HBONE_ALPN],
          rejectUnauthorized: true,
          checkServerIdentity: spiffeServerCheck(address, req.expectedServerId),
        });
      } catch (err) {
        // Unparseable PEM, or a key that does not match the certificate.
        fail(new HboneTlsError(address, `cannot load the certificate of ${sourceId}: ${errMessage(err)}`, 'check the identity bundle the agent holds', err));
        return;
      }
      tlsSocket = t;
      t.on('error', onTlsError);
      t.once('secureConnect', () => {
        if (t.alpnProtocol !== HBONE_ALPN) {
          fail(new HboneProtocolError(address, `server negotiated ALPN ${JSON.stringify(t.alpnProtocol)} instead of h2`));
          return;
        }
        awaitVerdict(t);
      });
    };

    // In TLS 1.3 our side finishes the handshake before the server has checked our certificate. The server's
    // first bytes (its HTTP/2 SETTINGS) mean it accepted us; an alert means it did not. Once the session owns
    // the socket, alerts show only as a bare close, so wait here; the session reads whatever was buffered.
    const awaitVerdict = (t: tls.TLSSocket): void => {
      stage = 'TLS handshake (server verifying our certificate)';
      const onEnd = (): void => fail(new HboneSessionError(address, 'closed by the server right after the TLS handshake'));
      const onReadable = (): void => {
        if (t.readableLength === 0) return;
        t.off('readable', onReadable);
        t.off('end', onEnd);
        startHttp2(t);
      };
      t.on('readable', onReadable);
      t.once('end', onEnd);
    };

    const startHttp2 = (t: tls.TLSSocket): void => {
      stage = 'HTTP/2 setup';
      // From here the session owns the socket and reports its errors.
      t.off('error', onTlsError);
      const s = (opts.engine ?? h2Engine()).client(t, {
        streamWindow: opts.streamWindow,
        connectionWindow: opts.connectionWindow,
        keepalive: opts.keepalive ? { ...opts.keepalive, whileIdle: true } : undefined,
        counters: opts.counters,
      });
      session = s;
      // In TLS 1.3 the server checks our certificate after our side finished: its refusal arrives here.
      const onError = (err: Error): void => fail(clientTlsError(address, sourceId, err));
      const onGoaway = (code: number, _last: number, opaque?: Buffer): void => fail(goawayError(address, sourceId, code, opaque));
      const onClose = (): void => fail(new HboneSessionError(address, 'closed by the server before its HTTP/2 SETTINGS arrived'));
      s.on('error', onError);
      s.on('goaway', onGoaway);
      s.on('close', onClose);
      s.once('remoteSettings', () => {
        // A refusing server sends GOAWAY right behind its SETTINGS: let it land before calling the session ready.
        setImmediate(ready);
      });
      const ready = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        opts.adopt(s, t);
        s.off('error', onError);
        s.off('goaway', onGoaway);
        s.off('close', onClose);
        resolve(s);
      };
    };

    const family = net.isIPv6(req.address.ip) ? 6 : 4;
    req.newSocket(family).then(
      (fd) => {
        tcp = socketFor(fd);
        if (done) {
          tcp.destroy();
          return;
        }
        stage = 'TCP connect';
        const onTcpError = (err: NodeJS.ErrnoException): void => fail(new HboneConnectError(address, err.code ?? err.message, err));
        tcp.on('error', onTcpError);
        tcp.connect({ host: req.address.ip, port: req.address.port }, () => {
          tcp!.off('error', onTcpError);
          // Long-lived tunnels may carry no data for hours: keepalive finds a vanished peer.
          tcp!.setKeepAlive(true, KEEPALIVE_MS);
          startTls();
        });
      },
      (err: unknown) => fail(new HboneSocketError(address, err)),
    );
  });
}

/** A GOAWAY during setup: INADEQUATE_SECURITY carries the server's reason for refusing our identity. */
export function goawayError(address: string, sourceId: string, code: number, opaque?: Buffer): Error {
  const reason = opaque && opaque.length > 0 ? opaque.toString('utf8') : null;
  if (code === ErrorCode.INADEQUATE_SECURITY) {
    return new HboneClientRejectedError(address, sourceId, reason ?? 'identity refused');
  }
  return new HboneSessionError(address, `server sent GOAWAY (HTTP/2 error code ${code}${reason ? `: ${reason}` : ''})`);
}

function ignore(): void {}
