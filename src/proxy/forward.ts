// The shared tail of every path: connect upstream (TCP or HBONE, failing over), relay, account, log, enforce.

import net from 'node:net';
import type { AuthzRequest } from '../state/authz';
import type { Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { Direction as ConnDirection, Endpoint } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';
import { relayStream, type HboneRespond } from './hbone';
import { connectHeaders } from './hbone/peer-meta';
import { ErrorCode } from './hbone/h2/constants';
import type { HboneStream } from './hbone/h2-engine';
import { adoptAccepted, Direction, newUpstream, startRelay, type RelayResult } from './relay';
import { REFUSED_RETRY_BUDGET_MS, retryWhileRefused } from './refused-retry';
import { upstreamSource, type UpstreamSource } from './transparent-source';

/** One place to send the connection: plain TCP to `ip:port`, or an HBONE tunnel to the pod's 15008. */
export interface Target extends Endpoint {
  via: 'tcp' | 'hbone';
  /** hbone: the SPIFFE ID the destination must present. */
  peerId?: string;
  /** L7 inbound: the client's address, which the connection to the local application comes from (transparent-source.ts). */
  from?: string;
}

/** Where the connection came from: a redirected/steered socket, or an HBONE CONNECT stream. */
export type Downstream =
  /** `initial`: what was read from the socket already (while detecting its protocol); it is sent first. */
  | { kind: 'socket'; socket: net.Socket; initial?: Buffer }
  | { kind: 'hbone'; stream: HboneStream; respond: HboneRespond };

export interface ForwardRequest {
  direction: ConnDirection;
  pod: Workload;
  downstream: Downstream;
  src: Endpoint;
  /** Where the client meant to go (a pod IP, or a service VIP). */
  dst: Endpoint;
  /** Places to try in order; the first that connects wins. */
  targets: Target[];
  /** Metric labels for the chosen target (null: none connected). */
  labels: (chosen: Target | null) => TcpLabels;
  sockets: PodSockets;
  connectTimeoutMs?: number;
  /** Inbound: what authorization decided on, so a policy change can re-check the open connection. */
  authz?: { podIp: string; request: AuthzRequest };
  /** Outbound to an undeclared port that detection found not to be HTTP: told to the destination agent. */
  detectedTcp?: boolean;
}

/** `down`: the upstream socket's read buffer (it was created with `onread`). */
type Upstream = { kind: 'tcp'; socket: net.Socket; down: Direction } | { kind: 'hbone'; stream: HboneStream };

/** Socket reads shorter than this are copied into an HTTP/2 stream rather than waited on (see Direction). */
const COPY_BELOW_FOR_STREAMS = 16 * 1024;

/** Envoy-style response flags: UF upstream connect failure, UC upstream reset, DC downstream reset, UH no healthy upstream. */
function responseFlags(error: Error | null, failedSide: string | null): string {
  if (error === null) return '-';
  return failedSide === 'upstream' ? 'UC' : 'DC';
}

export async function forward(ctx: ProxyContext, r: ForwardRequest): Promise<void> {
  const d = r.downstream;
  // Paused while we connect; a reset from the client must not become an unhandled 'error'.
  if (d.kind === 'socket') d.socket.on('error', ignore);
  // counted by a drain from accept to open(): released only once the tracker holds the connection (or refused it)
  const connecting = ctx.tracker.connectingStarted();
  const attempt = await connectFirst(ctx, r);
  if (attempt.upstream === null) {
    refuse(ctx, r, r.targets.length === 0 ? 'UH' : 'UF', attempt.error ?? 'no upstream', 503);
    connecting();
    return;
  }
  const chosen = attempt.target!;
  const upstream = attempt.upstream;
  let deniedBy: string | null = null;
  let counts: () => { up: number; down: number };
  const onClose = (res: RelayResult): void => {
    const flags = deniedBy !== null ? 'DENY' : responseFlags(res.error, res.failedSide);
    const closed = ctx.tracker.close(conn.id, {
      bytesUp: res.bytesUp,
      bytesDown: res.bytesDown,
      responseFlags: flags,
      error: deniedBy ?? (res.error ? res.error.message : null),
    });
    if (closed) accessLog(ctx, r, closed, chosen, flags);
  };
  let abort: () => void;
  let start: () => void;
  if (d.kind === 'socket' && upstream.kind === 'tcp') {
    // The common plaintext path: zero-copy relay with per-direction read buffers.
    const down = upstream.down;
    const up = new Direction(ctx.bufferSize);
    if (d.initial) up.preload(d.initial);
    const downstream = adoptAccepted(d.socket, up);
    counts = () => ({ up: up.bytes, down: down.bytes });
    abort = () => {
      downstream.resetAndDestroy();
      upstream.socket.resetAndDestroy();
    };
    start = () => startRelay(downstream, upstream.socket, up, down, { onClose });
  } else {
    // One end is an HTTP/2 stream. The socket end still reads into a fixed buffer (no Buffer per read).
    let zeroCopy: { socket: net.Socket; direction: Direction } | undefined;
    let downEnd: net.Socket | HboneStream;
    if (d.kind === 'socket') {
      const up = new Direction(ctx.bufferSize);
      if (d.initial) up.preload(d.initial);
      downEnd = adoptAccepted(d.socket, up);
      zeroCopy = { socket: downEnd, direction: up };
    } else {
      downEnd = d.stream;
    }
    const upEnd = upstream.kind === 'tcp' ? upstream.socket : upstream.stream;
    if (upstream.kind === 'tcp') zeroCopy = { socket: upstream.socket, direction: upstream.down };
    if (zeroCopy) zeroCopy.direction.copyBelow = COPY_BELOW_FOR_STREAMS;
    let relay: { bytesUp: number; bytesDown: number } | null = null;
    counts = () => ({ up: relay?.bytesUp ?? 0, down: relay?.bytesDown ?? 0 });
    abort = () => {
      for (const end of [downEnd, upEnd]) {
        if (end instanceof net.Socket) end.resetAndDestroy();
        else end.reset(ErrorCode.CANCEL);
      }
    };
    start = () => {
      if (d.kind === 'hbone') d.respond(200);
      relay = relayStream(downEnd, upEnd, { onClose, zeroCopy });
    };
  }
  const conn = ctx.tracker.open({
    direction: r.direction,
    pod: r.pod.uid,
    src: r.src,
    dst: r.dst,
    labels: r.labels(chosen),
    bytes: () => counts(),
  });
  connecting();
  start();
  if (r.authz) {
    const authz = r.authz;
    conn.revalidate = () => {
      const decision = ctx.authorize(authz.podIp, authz.request);
      if (decision.allowed) return true;
      deniedBy = `closed by policy: ${decision.reason}`;
      ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'denied_after_policy_change' });
      abort();
      return false;
    };
  }
}

/**
 * Ends a connection that gets no upstream (no endpoint connected, or policy said no): the client sees a reset
 * (or an HTTP status on HBONE), never a half-open proxy connection; it is counted and logged like any other.
 */
export function refuse(ctx: ProxyContext, r: ForwardRequest, flags: string, error: string, status: number): void {
  const d = r.downstream;
  if (d.kind === 'socket') d.socket.resetAndDestroy();
  else d.respond(status, error);
  const conn = ctx.tracker.open({ direction: r.direction, pod: r.pod.uid, src: r.src, dst: r.dst, labels: { ...r.labels(null), response_flags: flags }, bytes: () => ({ up: 0, down: 0 }) });
  const closed = ctx.tracker.close(conn.id, { bytesUp: 0, bytesDown: 0, responseFlags: flags, error });
  if (closed) accessLog(ctx, r, closed, null, flags);
}

function ignore(): void {}

interface Attempt {
  upstream: Upstream | null;
  target: Target | null;
  error: string | null;
}

/** Tries each target in turn; the downstream stays paused (or unanswered) meanwhile. */
async function connectFirst(ctx: ProxyContext, r: ForwardRequest): Promise<Attempt> {
  const errors: string[] = [];
  for (const target of r.targets) {
    if (downstreamGone(r.downstream)) return { upstream: null, target: null, error: 'client went away' };
    try {
      const upstream = target.via === 'hbone' ? await dialHbone(ctx, r, target) : await dialTcp(ctx, r, target);
      return { upstream, target, error: null };
    } catch (err) {
      errors.push(`${target.ip}:${target.port}${target.via === 'hbone' ? ' (HBONE)' : ''}: ${(err as Error).message}`);
      if (r.targets.length > 1) {
        ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'connect_failover' });
        ctx.log.debug({ pod: `${r.pod.namespace}/${r.pod.name}`, target, err }, 'upstream connect failed; trying the next endpoint');
      }
    }
  }
  return { upstream: null, target: null, error: errors.length ? errors.join('; ') : 'no healthy endpoints' };
}

function downstreamGone(d: Downstream): boolean {
  return d.kind === 'socket' ? d.socket.destroyed : d.stream.closed;
}

async function dialTcp(ctx: ProxyContext, r: ForwardRequest, target: Target): Promise<Upstream> {
  let src: UpstreamSource;
  try {
    src = await upstreamSource(ctx, r, target);
  } catch (err) {
    ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'socket' });
    throw new Error(`cannot create a socket in the pod network namespace: ${(err as Error).message}`);
  }
  // The upstream reads into a fixed buffer whatever the other end is (socket: startRelay, stream: relayStream).
  const down = new Direction(ctx.bufferSize);
  const socket = newUpstream(src.fd, down);
  // A tunnel reset while we dial (by the client, or by us for its faults: made-you-reset) must not leave the
  // application a connection nobody will use: the dial is abandoned with it.
  const d = r.downstream;
  const abandon = (): void => void socket.destroy(new Error('the HBONE stream closed while the upstream was connecting'));
  if (d.kind === 'hbone') {
    if (d.stream.closed) {
      socket.destroy();
      src.connected();
      throw new Error('the HBONE stream closed before the upstream was dialled');
    }
    d.stream.once('close', abandon);
  }
  const err = await connectOnce(socket, target, r.connectTimeoutMs ?? ctx.connectTimeoutMs);
  src.connected();
  if (d.kind === 'hbone') d.stream.off('close', abandon);
  if (err !== null) {
    socket.destroy();
    throw new Error(err);
  }
  return { kind: 'tcp', socket, down };
}

async function dialHbone(ctx: ProxyContext, r: ForwardRequest, target: Target): Promise<Upstream> {
  const mesh = ctx.mesh;
  if (!mesh || !target.peerId) throw new Error('HBONE target without mesh identity');
  const source = await mesh.identity.certFor(mesh.spiffeIdOf(r.pod));
  const peerId = target.peerId;
  const dial = (): ReturnType<typeof mesh.pool.connect> =>
    mesh.pool.connect({
      sourcePod: r.pod.uid,
      source,
      expectedServerId: peerId,
      address: { ip: target.ip, port: mesh.hbonePort },
      target: { ip: target.ip, port: target.port },
      newSocket: (family) => r.sockets.newSocket(family),
      headers: connectHeaders(r.pod, r.detectedTcp ? 'tcp' : undefined),
    });
  const budgetMs = Math.min(REFUSED_RETRY_BUDGET_MS, r.connectTimeoutMs ?? ctx.connectTimeoutMs);
  const retried = (): void => ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'hbone_refused_retry' });
  const { stream } = await retryWhileRefused(dial, { budgetMs, gone: () => downstreamGone(r.downstream), retried });
  return { kind: 'hbone', stream };
}

/** Connects `socket` to `target`; resolves with null, or the error code / message when it failed or timed out. */
export function connectOnce(socket: net.Socket, target: Endpoint, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      cleanup();
      resolve(`connect timed out after ${timeoutMs} ms`);
    }, timeoutMs);
    const onConnect = (): void => {
      cleanup();
      resolve(null);
    };
    const onError = (e: NodeJS.ErrnoException): void => {
      cleanup();
      resolve(e.code ?? e.message);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.connect({ host: target.ip, port: target.port });
  });
}

function accessLog(
  ctx: ProxyContext,
  r: ForwardRequest,
  closed: { src: string; dst: string; bytesUp: number; bytesDown: number; durationMs: number; error: string | null },
  upstream: Target | null,
  flags: string,
): void {
  const labels = r.labels(upstream);
  ctx.log.info(
    {
      type: 'access',
      direction: r.direction,
      pod: `${r.pod.namespace}/${r.pod.name}`,
      src: closed.src,
      dst: closed.dst,
      upstream: upstream ? `${upstream.ip}:${upstream.port}` : null,
      security: labels.connection_security_policy,
      source_principal: labels.source_principal,
      destination_principal: labels.destination_principal,
      bytes_sent: closed.bytesDown,
      bytes_received: closed.bytesUp,
      duration_ms: closed.durationMs,
      response_flags: flags,
      error: closed.error,
    },
    'connection closed',
  );
}
