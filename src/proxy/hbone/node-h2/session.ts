// A Node `http2` session (nghttp2) behind the HboneSession contract, on a socket HBONE already connected and verified.

import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import { H2PeerSilentError } from '../h2/constants';
import type { H2Keepalive } from '../h2/keepalive';
import type { EngineSessionOptions, HboneSession, HboneStream, Headers } from '../h2-engine';
import { NodeH2Stream, flatHeaders } from './stream';

function settingsOf(opts: EngineSessionOptions, server: boolean): http2.Settings {
  const s: http2.Settings = { initialWindowSize: opts.streamWindow, enablePush: false };
  if (opts.maxFrameSize !== undefined) s.maxFrameSize = Math.min(Math.max(opts.maxFrameSize, 16_384), 2 ** 24 - 1);
  if (server) s.maxConcurrentStreams = opts.maxConcurrentStreams ?? 100;
  return s;
}

export class NodeH2Session extends EventEmitter implements HboneSession {
  pingsSent = 0;
  private streams = 0;
  private goaway = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;

  /** Client: Node writes the preface and SETTINGS on `socket` at once. */
  static client(socket: net.Socket, opts: EngineSessionOptions): NodeH2Session {
    const raw = http2.connect('http://hbone.invalid', { createConnection: () => socket, settings: settingsOf(opts, false) });
    return new NodeH2Session(raw, opts);
  }

  /** Server: a throwaway `http2` server takes the socket as if it had accepted it (no listening socket). */
  static server(socket: net.Socket, opts: EngineSessionOptions): NodeH2Session {
    const srv = http2.createServer({ settings: settingsOf(opts, true) });
    let raw: http2.ServerHttp2Session | null = null;
    srv.once('session', (s: http2.ServerHttp2Session) => (raw = s));
    srv.emit('connection', socket);
    if (raw === null) throw new Error("Node's http2 server made no session for the connection");
    return new NodeH2Session(raw, opts);
  }

  private constructor(
    readonly raw: http2.ClientHttp2Session | http2.ServerHttp2Session,
    opts: EngineSessionOptions,
  ) {
    super();
    const widen = (): void => {
      if (opts.connectionWindow > 65_535 && !raw.destroyed) raw.setLocalWindowSize(opts.connectionWindow);
    };
    if (raw.connecting) raw.once('connect', widen);
    else widen();
    raw.on('remoteSettings', () => this.emit('remoteSettings', this.remoteSettings));
    raw.on('goaway', (code: number, last: number, opaque?: Buffer) => {
      this.goaway = true;
      this.emit('goaway', code, last, opaque ?? Buffer.alloc(0));
    });
    raw.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    raw.on('close', () => {
      this.stopKeepalive();
      this.emit('close');
    });
    raw.on('stream', (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const stream = this.track(s);
      stream.headers = flatHeaders(headers);
      this.emit('stream', stream, stream.headers);
    });
    if (opts.keepalive) this.armKeepalive(opts.keepalive);
  }

  get remoteSettings(): { maxConcurrentStreams: number } {
    const max = this.raw.remoteSettings.maxConcurrentStreams;
    return { maxConcurrentStreams: max === undefined || max >= 2 ** 32 - 1 ? Infinity : max };
  }

  get closed(): boolean {
    return this.goaway || this.raw.closed || this.raw.destroyed;
  }

  get destroyed(): boolean {
    return this.raw.destroyed;
  }

  get activeStreams(): number {
    return this.streams;
  }

  request(headers: Headers): HboneStream {
    if (this.closed) throw new Error('HTTP/2 session is closing');
    const raw = (this.raw as http2.ClientHttp2Session).request(headers, { endStream: false });
    return this.track(raw);
  }

  close(): void {
    if (!this.raw.closed && !this.raw.destroyed) this.raw.close();
  }

  destroy(err?: Error): void {
    if (this.raw.destroyed) return;
    this.raw.destroy(err);
    if (err && this.listenerCount('error') > 0) this.emit('error', err);
  }

  private track(raw: http2.Http2Stream): NodeH2Stream {
    this.streams++;
    return new NodeH2Stream(raw, () => this.streams--);
  }

  /** Node tells us nothing of bytes read, so the PING goes out every idle period (not only after silence). */
  private armKeepalive(k: H2Keepalive): void {
    this.keepaliveTimer = setTimeout(() => {
      this.keepaliveTimer = null;
      if (this.raw.destroyed) return;
      if (!k.whileIdle && this.streams === 0) return this.armKeepalive(k);
      let answered = false;
      const deadline = setTimeout(() => {
        if (!answered) this.destroy(new H2PeerSilentError(k.idleMs + k.timeoutMs));
      }, k.timeoutMs);
      deadline.unref();
      this.pingsSent++;
      const sent = this.raw.ping((err) => {
        answered = true;
        clearTimeout(deadline);
        if (err === null) this.armKeepalive(k);
      });
      if (!sent) clearTimeout(deadline);
    }, k.idleMs);
    this.keepaliveTimer.unref();
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer !== null) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }
}
