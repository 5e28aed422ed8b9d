// One event loop's L7 proxy: the HTTP/1.1 and HTTP/2 servers that parse client connections, the upstream
// pools, and the two layer stacks: outbound (source agent: route, balance, forward) and inbound
// (destination agent: authorize, forward to the application). The L4 entry points hand it connections
// whose port is HTTP, or may be (detection).

import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { PortProtocol, RouteStore, ServicePort } from '../../state/routes';
import { UNKNOWN, type Workload } from '../../state/workloads';
import { RequestMetrics } from '../../telemetry/request-metrics';
import type { PeerMeta } from '../hbone/peer-meta';
import { ResilienceMetrics } from '../../telemetry/resilience-metrics';
import { ClusterStates } from './cluster-state';
import type { TcpLabels } from '../../telemetry/metrics';
import type { Endpoint } from '../connection-tracker';
import type { PodSockets, ProxyContext } from '../context';
import { inboundSource } from '../inbound';
import type { ConnLabels, HttpConn } from './conn';
import { detect, type Detected } from './detect';
import { H1Downstream, type ServedConnection } from './downstream-h1';
import { H2Downstream } from './downstream-h2';
import { forwarder } from './forwarder';
import { authzLayer } from './layers/authz';
import { balanceLayer, upstreamVersion } from './layers/balance';
import { breakerLayer } from './layers/breaker';
import { faultLayer } from './layers/fault';
import { mirrorLayer } from './layers/mirror';
import { observeLayer } from './layers/observe';
import { retryLayer } from './layers/retry';
import { routerLayer } from './layers/router';
import { telemetryLayer, type AccessLogMode } from './layers/telemetry';
import { timeoutLayer } from './layers/timeout';
import { tracingLayers } from './layers/tracing';
import type { TapHub } from '../../telemetry/tap/tap-hub';
import type { Tracer } from '../../telemetry/tracing/tracer';
import { markFailure, readFailure } from './peer-failure';
import { compose, type Handler } from './request';
import { UpstreamPools } from './upstream-pools';

/** Once a drain began, how long an accepted connection may take to send its first request before it is closed. */
export const DRAIN_FIRST_BYTES_MS = 5000;

export interface HttpProxyOptions {
  ctx: ProxyContext;
  routes: RouteStore;
  registry: Registry;
  accessLog?: AccessLogMode;
  /** A client connection (HTTP/1.1 keep-alive, or HTTP/2 with no stream) idle this long is closed; 0: never. Default 60 s. */
  idleTimeoutMs?: number;
  /** Detection bound for ports whose protocol is not declared, when the control plane gives none. Default 100 ms. */
  detectTimeoutMs?: number;
  /** Where this agent runs, for locality-aware balancing. */
  locality?: { node: string; zone?: string };
  /** Spans (sampled, or of failed requests) and live tap; absent: neither. */
  tracer?: Tracer | null;
  tap?: TapHub | null;
}

/** Called with what detection read, when the connection turned out not to be HTTP: today's L4 path takes it. */
export type TcpFallback = (initial: Buffer) => void;

export class HttpProxy {
  readonly pools: UpstreamPools;
  readonly metrics: RequestMetrics;
  readonly resilience: ResilienceMetrics;
  /** Per cluster and endpoint: requests in flight, latency, outlier state, retry budgets. */
  readonly states = new ClusterStates();
  private readonly h1: H1Downstream;
  private readonly h2: H2Downstream;
  private readonly outbound: Handler;
  private readonly inbound: Handler;
  private readonly detectTimeoutMs: number;
  /** Connections accepted whose first request has not been read yet, each with its timer once a drain began. */
  private readonly unread = new Map<Duplex, NodeJS.Timeout | null>();
  private draining = false;

  constructor(private readonly o: HttpProxyOptions) {
    const ctx = o.ctx;
    this.detectTimeoutMs = o.detectTimeoutMs ?? 100;
    this.pools = new UpstreamPools(ctx);
    this.metrics = new RequestMetrics(o.registry);
    this.resilience = new ResilienceMetrics(o.registry);
    this.h1 = new H1Downstream({ log: ctx.log, idleTimeoutMs: o.idleTimeoutMs });
    this.h2 = new H2Downstream({ log: ctx.log, idleTimeoutMs: o.idleTimeoutMs });
    const appVersion = (ip: string): { app?: string; version?: string } | undefined => {
      const w = ctx.workloads.findByIp(ip);
      return w ? { app: w.labels.app, version: w.labels.version } : undefined;
    };
    const telemetry = telemetryLayer({ metrics: this.metrics, log: ctx.log, accessLog: o.accessLog ?? 'all', appVersion });
    const tracing = tracingLayers({ tracer: o.tracer ?? null, tap: o.tap ?? null, node: o.locality?.node ?? '' });
    const forward = forwarder(ctx, this.pools);
    const states = this.states;
    const metrics = this.resilience;
    // One attempt: limits, the endpoint, its accounting, the wire. Mirrors send through it too.
    const send = compose(
      [
        breakerLayer({ states, metrics }),
        balanceLayer({ services: ctx.services, workloads: ctx.workloads, mesh: ctx.mesh, states, locality: o.locality ?? { node: '' } }),
        observeLayer({ states, metrics, endpointsOf: (c) => ctx.services.endpointsOf(c) }),
      ],
      // A destination agent's 503 for an application it could not reach counts as that failure here.
      readFailure(forward),
    );
    this.outbound = compose(
      [
        telemetry,
        tracing.observe,
        routerLayer({ services: ctx.services, routes: o.routes }),
        tracing.propagate,
        faultLayer({ metrics }),
        mirrorLayer({ services: ctx.services, metrics, send }),
        timeoutLayer(),
        retryLayer({ states, metrics }),
      ],
      send,
    );
    const denied = (): void => ctx.metrics.proxyErrors.inc({ direction: 'inbound', reason: 'denied' });
    // Inbound: the target is the local application, at the address the client asked for.
    const toApp: Handler = markFailure((req, rc) => {
      // from the client's address, so the application sees who called (pools are then per client)
      rc.target = { ip: rc.conn.dst.ip, port: rc.conn.dst.port, via: 'tcp', from: rc.conn.src.ip };
      rc.upstreamVersion = upstreamVersion(rc.conn.protocol, req.version);
      return forward(req, rc);
    });
    this.inbound = compose([telemetry, tracing.observe, authzLayer(ctx.authorize, denied), tracing.propagate], toApp);
  }

  /**
   * A pod's redirected connection to an HTTP or undeclared port. `service` is the Service port it called
   * (null for a pod IP). Undeclared ports are detected first; what is not HTTP goes to `fallback`.
   */
  serveOutbound(pod: Workload, sockets: PodSockets, socket: net.Socket, dst: Endpoint, service: ServicePort | null, protocol: PortProtocol, fallback: TcpFallback): void {
    const src = { ip: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const principal = this.o.ctx.mesh ? this.o.ctx.mesh.spiffeIdOf(pod) : null;
    const conn: HttpConn = { direction: 'outbound', pod, sockets, src, dst, service, protocol, principal, labels: this.outboundLabels(pod, principal, service, dst) };
    this.serve(socket, conn, this.outbound, protocol === 'detect' ? (service?.detectTimeoutMs ?? this.detectTimeoutMs) : null, fallback);
  }

  /**
   * An inbound connection to a local pod's HTTP (or undeclared) port: plaintext from 15006 (principal null)
   * or the bytes of an HBONE tunnel.
   */
  serveInbound(pod: Workload, sockets: PodSockets, socket: Duplex, src: Endpoint, dst: Endpoint, principal: string | null, protocol: PortProtocol, fallback: TcpFallback, knownHttp = false, peer: PeerMeta | null = null): void {
    const conn: HttpConn = { direction: 'inbound', pod, sockets, src, dst, service: null, protocol, principal, labels: this.inboundLabels(pod, src.ip, principal, dst, peer) };
    // `knownHttp`: the source agent detected HTTP already; only the version is left to tell, without a bound.
    this.serve(socket, conn, this.inbound, protocol === 'detect' && !knownHttp ? this.detectTimeoutMs : null, fallback);
  }

  /** Graceful: answers say `Connection: close`, HTTP/2 clients get GOAWAY, idle upstreams close. */
  drain(): void {
    this.draining = true;
    for (const socket of this.unread.keys()) this.closeIfSilent(socket);
    this.h1.drain();
    this.h2.drain();
    this.pools.closeIdle();
  }

  dropPod(uid: string): void {
    this.pools.dropPod(uid);
  }

  destroy(): void {
    this.pools.destroy();
  }

  private serve(socket: Duplex, conn: HttpConn, handler: Handler, detectMs: number | null, fallback: TcpFallback): void {
    const ctx = this.o.ctx;
    // A response goes out as several writes (head, chunks, the last chunk): Nagle would hold the tail for
    // the client's delayed ACK, 40 ms a request.
    (socket as Partial<net.Socket>).setNoDelay?.(true);
    // A drain counts the connection from here: while its first bytes are on their way it is in no list, and a
    // drain that saw nothing open would end the agent under the request. Released once the connection is
    // tracked, handed to the TCP path (which counts it itself) or closed.
    const accepted = ctx.tracker.connectingStarted();
    this.unread.set(socket, null);
    if (this.draining) this.closeIfSilent(socket);
    void detect(socket, detectMs).then((d: Detected) => {
      const timer = this.unread.get(socket);
      if (timer) clearTimeout(timer);
      this.unread.delete(socket);
      try {
        this.detected(socket, conn, handler, d, fallback);
      } finally {
        accepted();
      }
    });
  }

  /**
   * Draining: a connection whose first request has not come within DRAIN_FIRST_BYTES_MS is closed. Its client
   * lost no request (none was sent), and it no longer holds the drain (up to the handover's hour) for nothing.
   */
  private closeIfSilent(socket: Duplex): void {
    if (this.unread.get(socket)) return;
    const timer = setTimeout(() => socket.destroy(), DRAIN_FIRST_BYTES_MS);
    timer.unref();
    this.unread.set(socket, timer);
  }

  /** What the first bytes said decides who serves the connection: the TCP path, or HTTP/1.1 or HTTP/2. */
  private detected(socket: Duplex, conn: HttpConn, handler: Handler, d: Detected, fallback: TcpFallback): void {
    const ctx = this.o.ctx;
    if (d.closed && d.bytes.length === 0) {
      socket.destroy();
      return;
    }
    // A declared HTTP port speaks HTTP whatever comes first: the HTTP/1.1 parser answers garbage with 400.
    if (d.kind === 'tcp' && conn.protocol === 'detect') {
      if (d.timedOut) ctx.metrics.proxyErrors.inc({ direction: conn.direction, reason: 'detect_timeout' });
      let rest: Buffer | null;
      const parts = [d.bytes];
      while ((rest = socket.read() as Buffer | null) !== null) parts.push(rest);
      fallback(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      return;
    }
    if (d.bytes.length > 0) socket.unshift(d.bytes);
    const tracked = this.track(socket, conn);
    const served: ServedConnection = {
      conn,
      handler,
      onClientError: (code) => {
        ctx.metrics.proxyErrors.inc({ direction: conn.direction, reason: 'bad_request' });
        ctx.log.debug({ pod: `${conn.pod.namespace}/${conn.pod.name}`, src: conn.src, code }, 'malformed HTTP request; answered and closed');
        tracked.flag = 'DPE';
      },
    };
    if (d.kind === 'http2') this.h2.serve(socket, served);
    else this.h1.serve(socket, served);
  }

  /** The connection in /connections and in drain, with TCP-level labels and byte counts. */
  private track(socket: Duplex, conn: HttpConn): { flag: string } {
    const ctx = this.o.ctx;
    const state = { flag: '-' };
    const labels: TcpLabels = {
      reporter: conn.labels.reporter,
      source_workload: conn.labels.source_workload,
      source_workload_namespace: conn.labels.source_workload_namespace,
      source_principal: conn.labels.source_principal,
      destination_workload: conn.labels.destination_workload,
      destination_workload_namespace: conn.labels.destination_workload_namespace,
      destination_principal: conn.labels.destination_principal,
      destination_service: conn.labels.destination_service,
      connection_security_policy: conn.labels.connection_security_policy,
      response_flags: '-',
    };
    const bytes = (): { up: number; down: number } => {
      const s = socket as Partial<net.Socket>;
      return { up: s.bytesRead ?? 0, down: s.bytesWritten ?? 0 };
    };
    const info = ctx.tracker.open({ direction: conn.direction, pod: conn.pod.uid, src: conn.src, dst: conn.dst, labels, bytes });
    socket.once('close', () => {
      const b = bytes();
      ctx.tracker.close(info.id, { bytesUp: b.up, bytesDown: b.down, responseFlags: state.flag, error: null });
    });
    return state;
  }

  private outboundLabels(pod: Workload, principal: string | null, service: ServicePort | null, dst: Endpoint): ConnLabels {
    // A pod IP called directly still names the Service that selects its port, as Istio's metrics do.
    const host = service ? (this.o.ctx.services.cluster(service.cluster)?.host ?? UNKNOWN) : (this.o.ctx.services.portService(dst.ip, dst.port) ?? UNKNOWN);
    const [name, namespace] = host === UNKNOWN ? [UNKNOWN, UNKNOWN] : host.split('.');
    return {
      reporter: 'source',
      source_workload: pod.workloadName,
      source_workload_namespace: pod.namespace,
      source_principal: principal ?? UNKNOWN,
      source_app: pod.labels.app ?? UNKNOWN,
      source_version: pod.labels.version ?? UNKNOWN,
      destination_workload: UNKNOWN,
      destination_workload_namespace: UNKNOWN,
      destination_principal: UNKNOWN,
      destination_app: UNKNOWN,
      destination_version: UNKNOWN,
      destination_service: host,
      destination_service_name: name ?? UNKNOWN,
      destination_service_namespace: namespace ?? UNKNOWN,
      connection_security_policy: UNKNOWN,
    };
  }

  /** The source as the TCP view names it (`inboundSource`), with its app and version. */
  private inboundLabels(pod: Workload, peerIp: string, principal: string | null, dst: Endpoint, peer: PeerMeta | null): ConnLabels {
    const ctx = this.o.ctx;
    const host = ctx.services.portService(dst.ip, dst.port) ?? UNKNOWN;
    const [svcName, svcNs] = host === UNKNOWN ? [UNKNOWN, UNKNOWN] : host.split('.');
    const src = inboundSource(ctx, peerIp, principal, peer);
    return {
      reporter: 'destination',
      source_workload: src.workload,
      source_workload_namespace: src.namespace,
      source_principal: principal ?? UNKNOWN,
      source_app: src.app,
      source_version: src.version,
      destination_workload: pod.workloadName,
      destination_workload_namespace: pod.namespace,
      destination_principal: principal && ctx.mesh ? ctx.mesh.spiffeIdOf(pod) : UNKNOWN,
      destination_app: pod.labels.app ?? UNKNOWN,
      destination_version: pod.labels.version ?? UNKNOWN,
      destination_service: host,
      destination_service_name: svcName ?? UNKNOWN,
      destination_service_namespace: svcNs ?? UNKNOWN,
      connection_security_policy: principal ? 'mutual_tls' : 'none',
    };
  }
}
