// The HTTP/2 contract HBONE's client pool, dial and server are written against, and the two engines behind it.
//
// `nodemesh` (default) is our own session (./h2): DATA as views of the TLS reads, the conformance and flood
// bounds of RFC 9113. `node` runs Node's `http2` (nghttp2) behind the same contract (./node-h2), for A/B
// measurements and as an incident switch if our session misbehaves: `nodemesh agent --hbone-h2 node`.

import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { H2Counters } from './h2/h2-counters';
import type { H2Keepalive } from './h2/keepalive';
import type { PeerBudget } from './h2/peer-budget';
import { H2Session } from './h2/session';
import { NodeH2Session } from './node-h2/session';

export type Headers = Record<string, string>;
type WriteCallback = (err?: Error | null) => void;

/**
 * One CONNECT tunnel. Events: 'response' (client: final response headers), 'data' (Buffer), 'end' (the peer's
 * END_STREAM, after its data), 'drain', 'close' (last event; `rstCode` 0 for a stream that ended both ways,
 * else the reset code; `error` says why when the session failed under it). Never 'error': faults show in
 * 'close', so an unwatched stream cannot crash the agent. Reading starts paused until `resume()`.
 */
export interface HboneStream extends EventEmitter {
  readonly id: number;
  /** Request headers (server side) or final response headers (client side, once 'response' fired). */
  headers: Headers;
  readonly rstCode: number | undefined;
  readonly error: Error | null;
  readonly closed: boolean;
  readonly destroyed: boolean;
  readonly writableLength: number;
  write(chunk: Buffer, cb?: WriteCallback): boolean;
  /** Optional: a chunk with FRAME_HEADER_LENGTH bytes lent before it (see H2Stream.writeFramed). */
  writeFramed?(chunk: Buffer, cb?: WriteCallback): boolean;
  end(): void;
  /** Server side: answers the request; `endStream` makes it the whole answer. */
  respond(headers: Headers, endStream?: boolean): void;
  /** Sends RST_STREAM(`code`) and closes the stream. */
  reset(code?: number): void;
  pause(): void;
  resume(): void;
  /** Optional: 'data' may hand over views of a reused read buffer (see H2Stream.acceptBorrowedChunks). */
  acceptBorrowedChunks?(): void;
  keep?(): void;
}

/**
 * One HTTP/2 connection. Events: 'remoteSettings' ({ maxConcurrentStreams }), 'stream' (server: HboneStream,
 * headers), 'goaway' (code, lastStreamId, debug Buffer), 'error' (the session failed), 'close' (once, last).
 */
export interface HboneSession extends EventEmitter {
  readonly remoteSettings: { readonly maxConcurrentStreams: number };
  /** No new streams: close() was called, or the peer sent GOAWAY. */
  readonly closed: boolean;
  readonly destroyed: boolean;
  readonly activeStreams: number;
  /** Keepalive PINGs sent. */
  readonly pingsSent: number;
  /** Client: opens a stream with `headers`. Throws when the session takes no new streams. */
  request(headers: Headers): HboneStream;
  /** Graceful: GOAWAY, open streams finish, then the connection closes. */
  close(): void;
  destroy(err?: Error): void;
}

export interface EngineSessionOptions {
  /** Receive windows we advertise: per stream, and for the connection. */
  streamWindow: number;
  connectionWindow: number;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams?: number;
  maxFrameSize?: number;
  keepalive?: H2Keepalive;
  /** nodemesh engine only: where resets, floods and timeouts are counted, and the peer's shared budget. */
  counters?: H2Counters;
  peerBudget?: PeerBudget;
}

export const H2_ENGINES = ['nodemesh', 'node'] as const;
export type H2EngineName = (typeof H2_ENGINES)[number];

export interface H2Engine {
  readonly name: H2EngineName;
  /** Starts HTTP/2 as the client on a connected (TLS) socket: the preface and SETTINGS go out at once. */
  client(socket: net.Socket, opts: EngineSessionOptions): HboneSession;
  /** Starts HTTP/2 as the server on an accepted (TLS) socket. */
  server(socket: net.Socket, opts: EngineSessionOptions): HboneSession;
}

const ENGINES: Record<H2EngineName, H2Engine> = {
  nodemesh: {
    name: 'nodemesh',
    client: (socket, opts) => new H2Session(socket, { role: 'client', ...opts }),
    server: (socket, opts) => new H2Session(socket, { role: 'server', ...opts }),
  },
  node: {
    name: 'node',
    client: (socket, opts) => NodeH2Session.client(socket, opts),
    server: (socket, opts) => NodeH2Session.server(socket, opts),
  },
};

export function isH2EngineName(name: string): name is H2EngineName {
  return (H2_ENGINES as readonly string[]).includes(name);
}

/** The engine called `name`; the default is ours. */
export function h2Engine(name: H2EngineName = 'nodemesh'): H2Engine {
  return ENGINES[name];
}
