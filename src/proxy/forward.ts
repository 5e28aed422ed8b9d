// The shared tail of inbound and outbound: open the upstream from the pod netns, relay, account, log.

import fs from 'node:fs';
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
  target: Endpoint;
  labels: TcpLabels;
  sockets: PodSockets;
}

/** Envoy-style response flags: UF upstream connect failure, UC upstream reset, DC downstream reset. */
function responseFlags(error: Error | null, connected: boolean, failedSide: string | null): string {
  if (error === null) return '-';
  if (!connected) return 'UF';
  return failedSide === 'upstream' ? 'UC' : 'DC';
}

export async function forward(ctx: ProxyContext, r: ForwardRequest): Promise<void> {
  let fd: number | null;
  try {
    fd = await r.sockets.newSocket(net.isIPv6(r.target.ip) ? 6 : 4);
  } catch (err) {
    ctx.metrics.proxyErrors.inc({ direction: r.direction, reason: 'socket' });
    ctx.log.error({ err, pod: `${r.pod.namespace}/${r.pod.name}`, dst: r.target }, 'cannot create upstream socket in the pod network namespace; resetting client');
    r.accepted.resetAndDestroy();
    return;
  }
  if (r.accepted.destroyed) {
    if (fd !== null) fs.closeSync(fd);
    return;
  }

  const up = new Direction(ctx.bufferSize);
  const down = new Direction(ctx.bufferSize);
  const downstream = adoptAccepted(r.accepted, up);
  const upstream = newUpstream(fd, down);
  let connected = false;
  const conn = ctx.tracker.open({
    direction: r.direction,
    pod: r.pod.uid,
    src: r.src,
    dst: r.target,
    labels: r.labels,
    bytes: () => ({ up: up.bytes, down: down.bytes }),
  });

  startRelay(downstream, upstream, up, down, {
    onClose: (res) => {
      const flags = responseFlags(res.error, connected, res.failedSide);
      const closed = ctx.tracker.close(conn.id, {
        bytesUp: res.bytesUp,
        bytesDown: res.bytesDown,
        responseFlags: flags,
        error: res.error ? res.error.message : null,
      });
      if (closed === null) return;
      ctx.log.info(
        {
          type: 'access',
          direction: r.direction,
          pod: `${r.pod.namespace}/${r.pod.name}`,
          src: closed.src,
          dst: closed.dst,
          bytes_sent: closed.bytesDown,
          bytes_received: closed.bytesUp,
          duration_ms: closed.durationMs,
          response_flags: flags,
          error: closed.error,
        },
        'connection closed',
      );
    },
  });

  upstream.setTimeout(ctx.connectTimeoutMs, () => {
    if (!connected) {
      upstream.destroy(new Error(`connect to ${r.target.ip}:${r.target.port} timed out after ${ctx.connectTimeoutMs} ms`));
    }
  });
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
  });
  upstream.connect({ host: r.target.ip, port: r.target.port });
}
