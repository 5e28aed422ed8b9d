// The shared tail of inbound and outbound: connect from the pod netns (failing over), relay, account, log.

import net from 'node:net';
import type { Workload } from '../state/workloads';
import type { TcpLabels } from '../telemetry/metrics';
import type { Direction as ConnDirection, Endpoint } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';
import { adoptAccepted, Direction, newUpstream, startRelay } from './relay';

export interface ForwardRequest {
  direction: ConnDirection;
  pod: Workload;
  accepted: net.Socket;
  src: Endpoint;
  /** Where the client meant to go (a pod IP, or a service VIP). */
  dst: Endpoint;
  /** Upstream addresses to try in order; the first that connects wins. */
  targets: Endpoint[];
  /** Metric labels for the chosen upstream (null: none connected). */
  labels: (chosen: Endpoint | null) => TcpLabels;
  sockets: PodSockets;
  connectTimeoutMs?: number;
}

/** Envoy-style response flags: UF upstream connect failure, UC upstream reset, DC downstream reset, UH no healthy upstream. */
function responseFlags(error: Error | null, failedSide: string | null): string {
  if (error === null) return '-';
  return failedSide === 'upstream' ? 'UC' : 'DC';
}

export async function forward(ctx: ProxyContext, r: ForwardRequest): Promise<void> {
  const up = new Direction(ctx.bufferSize);
  const down = new Direction(ctx.bufferSize);
  const downstream = adoptAccepted(r.accepted, up);
  // Paused while we connect; a reset from the client must not become an unhandled 'error'.
  downstream.on('error', ignore);
  const attempt = await connectFirst(ctx, r, downstream, down);
  if (attempt.socket === null) {
    // Nothing connected: the client sees a reset, never a half-open proxy connection.
    downstream.resetAndDestroy();
    const flags = r.targets.length === 0 ? 'UH' : 'UF';
    const conn = ctx.tracker.open({ direction: r.direction, pod: r.pod.uid, src: r.src, dst: r.dst, labels: r.labels(null), bytes: () => ({ up: 0, down: 0 }) });
    const closed = ctx.tracker.close(conn.id, { bytesUp: 0, bytesDown: 0, responseFlags: flags, error: attempt.error });
    if (closed) accessLog(ctx, r, closed, null, flags);
    return;
  }
  const upstream = attempt.socket;
  const chosen = attempt.target;
  const conn = ctx.tracker.open({
    direction: r.direction,
    pod: r.pod.uid,
    src: r.src,
    dst: r.dst,
    labels: r.labels(chosen),
    bytes: () => ({ up: up.bytes, down: down.bytes }),
  });
  startRelay(downstream, upstream, up, down, {
    onClose: (res) => {
      const flags = responseFlags(res.error, res.failedSide);
      const closed = ctx.tracker.close(conn.id, {
        bytesUp: res.bytesUp,
        bytesDown: res.bytesDown,
        responseFlags: flags,
        error: res.error ? res.error.message : null,
      });
      if (closed) accessLog(ctx, r, closed, chosen, flags);
    },
  });
}

function ignore(): void {}

interface Attempt {
  socket: net.Socket | null;
  target: Endpoint | null;
  error: string | null;
}

/** Tries each target in turn with a fresh socket from the pod netns; the downstream stays paused meanwhile. */
async function connectFirst(ctx: ProxyContext, r: ForwardRequest, downstream: net.Socket, down: Direction): Promise<Attempt> {
  const errors: string[] = [];
  for (const target of r.targets) {
    if (downstream.destroyed) return { socket: null, target: null, error: 'client went away' };
    let fd: number | null;
    try {
      fd = await r.sockets.newSocket(net.isIPv6(target.ip) ? 6 : 4);
    } catch (err) {
      ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'socket' });
      ctx.log.error({ err, pod: `${r.pod.namespace}/${r.pod.name}` }, 'cannot create upstream socket in the pod network namespace');
      return { socket: null, target: null, error: `cannot create upstream socket: ${(err as Error).message}` };
    }
    const socket = newUpstream(fd, down);
    const err = await connectOnce(socket, target, r.connectTimeoutMs ?? ctx.connectTimeoutMs);
    if (err === null) return { socket, target, error: null };
    socket.destroy();
    errors.push(`${target.ip}:${target.port}: ${err}`);
    if (r.targets.length > 1) {
      ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'connect_failover' });
      ctx.log.debug({ pod: `${r.pod.namespace}/${r.pod.name}`, target, err }, 'upstream connect failed; trying the next endpoint');
    }
  }
  return { socket: null, target: null, error: errors.length ? errors.join('; ') : 'no healthy endpoints' };
}

function connectOnce(socket: net.Socket, target: Endpoint, timeoutMs: number): Promise<string | null> {
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
  upstream: Endpoint | null,
  flags: string,
): void {
  ctx.log.info(
    {
      type: 'access',
      direction: r.direction,
      pod: `${r.pod.namespace}/${r.pod.name}`,
      src: closed.src,
      dst: closed.dst,
      upstream: upstream ? `${upstream.ip}:${upstream.port}` : null,
      bytes_sent: closed.bytesDown,
      bytes_received: closed.bytesUp,
      duration_ms: closed.durationMs,
      response_flags: flags,
      error: closed.error,
    },
    'connection closed',
  );
}
