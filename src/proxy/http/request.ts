// The request seam: what one L7 request and its answer look like to the per-request layers, and how
// layers compose. Every per-request behaviour (routing, authorization, telemetry, and later timeouts,
// retries, breakers, balancing, mirroring, faults) is one `Layer` over a `Handler`, in a file of its own.
//
// Contract for layers:
// - A handler resolves with the response head once it is known (the body streams after that) and never
//   rejects: failures become local replies (`localReply`) with response flags set on the context.
// - A layer may answer itself (not call `next`), call `next` once, or (retries, mirrors) more than once
//   with a request whose body it made replayable.
// - `rc.done` callbacks run exactly once per request, after the response ended or the exchange failed.

import type { Readable } from 'node:stream';
import type { Route, HttpVersion, WeightedBackend } from '../../state/routes';
import type { ClusterInfo, EndpointInfo } from '../../state/services';
import type { Target } from '../forward';
import type { HttpConn } from './conn';

/** Header names lower case, no pseudo-headers, no hop-by-hop headers (the codecs strip those). */
export type Headers = Record<string, string | string[] | undefined>;

export interface L7Request {
  method: string;
  /** Origin-form target as received: path and query. */
  path: string;
  /** `:authority`, or the Host header. */
  authority: string;
  scheme: string;
  headers: Headers;
  /**
   * The body as it arrives, a Buffer when a layer made it replayable, or null when the request has none.
   * Readers must consume or discard a stream body (resume it), or the client stalls.
   */
  body: Readable | Buffer | null;
  /** The client's HTTP version on this hop. */
  version: HttpVersion;
  /**
   * An HTTP/1.1 Upgrade (WebSocket): once the forwarder reached the upstream, the two connections become one
   * byte tunnel (the upstream's 101 goes to the client as it came) and the codec writes nothing itself.
   */
  upgrade?: { socket: import('node:stream').Duplex; head: Buffer };
}

/** Where a response body is delivered: `write` returning false pauses the source until `resume()`. */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(trailers: Headers | null): void;
  fail(err: Error): void;
}

/** A response body streaming from upstream: delivered to one sink, once. */
export interface BodySource {
  pipe(sink: BodySink): void;
  /** The sink drained after a write returned false. */
  resume(): void;
  /** The client went away: stop and release the upstream. */
  abort(reason: Error): void;
}

export interface L7Response {
  status: number;
  headers: Headers;
  /** A Buffer for local replies and small bodies, a source for proxied ones, null for none. */
  body: BodySource | Buffer | null;
  /** Trailers known with the head (a local gRPC reply is trailers-only). */
  trailers?: Headers;
  /** The agent answered itself (no route, denied, overflow, …): never mistaken for an upstream's status. */
  local?: boolean;
  /** Why an attempt produced no upstream answer (set by the forwarder): what retries decide on. */
  failure?: 'connect' | 'refused' | 'reset' | 'timeout';
  /** The exchange became a byte tunnel (an upgrade): the codec writes nothing; this settles when it ends. */
  tunnel?: Promise<{ bytesUp: number; bytesDown: number; error: Error | null }>;
}

/** What the exchange came to, for telemetry: counted by the codecs, known once the response ended. */
export interface RequestResult {
  status: number;
  /** Request body bytes read from the client. */
  requestBytes: number;
  /** Response body bytes written to the client. */
  responseBytes: number;
  /** gRPC status from trailers or headers, when the exchange was gRPC. */
  grpcStatus: string | null;
  /** The client reset or went away before the response ended. */
  downstreamReset: boolean;
  durationMs: number;
}

/**
 * Per-request state the layers share. Codecs create it; layers fill in what they decide (route, backend,
 * endpoint, flags) so later layers and telemetry see it.
 */
export interface RequestContext {
  /** `x-request-id`: taken from the client or generated. */
  id: string;
  /** The downstream connection (local pod, addresses, peer identity, Service port). */
  conn: HttpConn;
  startedAt: bigint;
  /** Envoy response flags (`NR`, `UF`, `UH`, `DENY`, …); empty means `-`. */
  flags: string[];
  /** Set once the client went away: layers stop work and upstreams are released. */
  aborted: boolean;
  /** Set by whoever has work in flight for the request (the forwarder's upstream attempt): called on abort. */
  onAbort: (() => void) | null;
  /** The exchange is gRPC (content-type application/grpc*). */
  grpc: boolean;
  route: Route | null;
  backend: WeightedBackend | null;
  cluster: ClusterInfo | null;
  /** The endpoint chosen for the (current) attempt, with its workload metadata when the agent knows it. */
  endpoint: EndpointInfo | null;
  /** Where the (current) attempt goes, and in which HTTP version. */
  target: Target | null;
  upstreamVersion: HttpVersion | null;
  attempts: number;
  /** `ip:port` of every endpoint an attempt already went to: retries go elsewhere when they can. */
  previousHosts: string[];
  /** Ends the current attempt's share of the in-flight counts (the balance layer sets it; retries call it). */
  releaseAttempt: (() => void) | null;
  /** Why the agent answered itself, for the access log (`no route`, `denied by …`, `connect refused`). */
  detail: string | null;
  done: ((r: RequestResult) => void)[];
}

export type Handler = (req: L7Request, rc: RequestContext) => Promise<L7Response>;
export type Layer = (next: Handler) => Handler;

/** `layers[0]` is outermost: it sees the request first and the response last. */
export function compose(layers: Layer[], terminal: Handler): Handler {
  let h = terminal;
  for (let i = layers.length - 1; i >= 0; i--) h = layers[i]!(h);
  return h;
}

/** gRPC status codes the agent itself answers with (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC status for an HTTP status the agent answers with (as Envoy maps them). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * An answer the agent makes itself (no route, denied, no upstream): a short text body that says why, or for
 * gRPC a trailers-only response with `grpc-status`/`grpc-message`, as gRPC clients expect.
 */
export function localReply(rc: RequestContext, status: number, message: string, flag?: string): L7Response {
  if (flag && !rc.flags.includes(flag)) rc.flags.push(flag);
  rc.detail = message;
  if (rc.grpc) {
    const trailers = { 'grpc-status': String(grpcStatusForHttp(status)), 'grpc-message': encodeURIComponent(message) };
    return { status: 200, headers: { 'content-type': 'application/grpc' }, body: null, trailers, local: true };
  }
  const body = Buffer.from(`${message}\n`);
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length) }, body, local: true };
}
