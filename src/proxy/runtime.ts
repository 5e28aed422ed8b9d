// One event loop's share of the data path: stores, metrics, connection tracker, HBONE pool and pod listeners.
// The agent's main thread runs one; each data-plane worker thread runs another over copies of the same fds.

import type { Registry } from 'prom-client';
import type { IdentitySource } from '../identity/types';
import { spiffeId } from '../identity/types';
import { PORT_HBONE } from '../datapath/types';
import { authorize, AuthzStore } from '../state/authz';
import { RouteStore } from '../state/routes';
import { ServiceStore, type EndpointInfo } from '../state/services';
import { WorkloadStore, type Workload } from '../state/workloads';
import { registerHboneMetrics } from '../telemetry/hbone-metrics';
import type { Logger } from '../telemetry/logger';
import { ProxyMetrics } from '../telemetry/metrics';
import type { AgentResource, ResourceChange } from '../xds/agent-resources';
import { CDS, EDS, LDS, RDS } from '../xds/resource-types';
import { ConnectionTracker } from './connection-tracker';
import type { PodSockets, ProxyContext } from './context';
import { HboneClientPool, type HboneServerStats } from './hbone';
import type { KeepaliveTiming } from './hbone/h2/session';
import { HandshakeLimiter, type FloodWatch, type HandshakeOptions } from './hbone/handshake-limits';
import { HttpProxy } from './http/http-proxy';
import type { AccessLogMode } from './http/layers/telemetry';
import type { H2EngineName } from './hbone/h2-engine';
import { PodProxy, type PodListenerFds } from './pod-proxy';
import type { TapHub } from '../telemetry/tap/tap-hub';
import type { Tracer } from '../telemetry/tracing/tracer';
import { DEFAULT_RELAY_BUFFER } from './relay';

/** The agent's L7 switches: `enabled` false sends every connection down the L4 path (an incident switch). */
export interface L7Options {
  enabled: boolean;
  accessLog: AccessLogMode;
  /** A client's HTTP connection with no request in progress is closed after this long (0: never). Default 60 s. */
  idleTimeoutMs?: number;
}

export interface ProxyRuntimeOptions {
  log: Logger;
  registry: Registry;
  bufferSize?: number;
  connectTimeoutMs?: number;
  /** With workload identities, mesh destinations go over HBONE (mTLS). */
  mesh?: { identity: IdentitySource; trustDomain: string; keepalive?: KeepaliveTiming | null; handshakes?: HandshakeOptions; h2?: H2EngineName };
  /** L7 for HTTP ports (default on); off sends every connection down the L4 path (an incident switch). */
  l7?: boolean;
  /** Per-request access lines: all (default), errors only, or none. */
  accessLog?: AccessLogMode;
  /** Downstream idle timeout of HTTP client connections (L7Options.idleTimeoutMs). */
  httpIdleTimeoutMs?: number;
  /** This agent's node (and zone), for locality-aware balancing. */
  locality?: { node: string; zone?: string };
  /**
   * Hands memory back to the kernel once a burst of connections to pods' 15008 is over (the addon's
   * `relieveMemory`: a full GC of this thread's heap, then glibc's free pages). Absent: nothing is done.
   */
  relieveMemory?: () => void;
  /** This thread's tracer and tap (see proxy/http/layers/tracing.ts); absent: no spans, no tap. */
  tracer?: Tracer | null;
  tap?: TapHub | null;
}

export interface PodHboneServers {
  pod: string;
  namespace: string;
  servers: HboneServerStats[];
}

export class ProxyRuntime {
  readonly metrics: ProxyMetrics;
  readonly tracker: ConnectionTracker;
  readonly workloads = new WorkloadStore();
  readonly services = new ServiceStore();
  readonly authz = new AuthzStore();
  readonly routes = new RouteStore();
  readonly ctx: ProxyContext;
  private readonly proxies = new Map<string, { pod: Workload; proxy: PodProxy }>();

  constructor(opts: ProxyRuntimeOptions) {
    this.metrics = new ProxyMetrics(opts.registry);
    this.tracker = new ConnectionTracker(this.metrics);
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.ctx = {
      log: opts.log,
      metrics: this.metrics,
      tracker: this.tracker,
      workloads: this.workloads,
      services: this.services,
      bufferSize: opts.bufferSize ?? DEFAULT_RELAY_BUFFER,
      connectTimeoutMs,
      mesh: null,
      authorize: (podIp, req) => authorize(this.authz.forPodIp(podIp), req),
      strictMtls: (podIp) => this.authz.forPodIp(podIp).mtlsMode === 'STRICT',
      http: null,
    };
    if (opts.mesh) {
      const { identity, trustDomain, keepalive, handshakes, h2 } = opts.mesh;
      this.ctx.mesh = {
        identity,
        pool: new HboneClientPool({ log: opts.log, connectTimeoutMs, keepalive, h2 }),
        keepalive,
        handshakes: { limiter: new HandshakeLimiter(handshakes?.limits, floodWatch(opts)), timeoutMs: handshakes?.timeoutMs },
        h2,
        hbonePort: PORT_HBONE,
        trustDomain,
        spiffeIdOf: (w) => spiffeId({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount }),
      };
      const pool = this.ctx.mesh.pool;
      registerHboneMetrics(opts.registry, () => pool.stats(), () => this.hboneServers());
    }
    if (opts.l7 !== false) this.ctx.http = new HttpProxy({ ctx: this.ctx, routes: this.routes, registry: opts.registry, accessLog: opts.accessLog, idleTimeoutMs: opts.httpIdleTimeoutMs, locality: opts.locality, tracer: opts.tracer, tap: opts.tap });
    // A policy change re-checks every connection it admitted: what is no longer allowed is closed.
    this.authz.onChange(() => {
      const closed = this.tracker.revalidateAll();
      if (closed > 0) opts.log.info({ closed }, 'closed connections no longer allowed by policy');
    });
  }

  /** Serves the pod's listeners (taking ownership of the fds) and makes the pod known as a local workload. */
  async startPod(pod: Workload, sockets: PodSockets, fds: PodListenerFds): Promise<PodProxy> {
    const proxy = new PodProxy(this.ctx, pod, sockets);
    // known before it listens, so stopPod() during start closes the fds it has not taken yet
    this.proxies.set(pod.uid, { pod, proxy });
    try {
      await proxy.start(fds);
    } catch (err) {
      if (this.proxies.get(pod.uid)?.proxy === proxy) this.proxies.delete(pod.uid);
      throw err;
    }
    if (this.proxies.get(pod.uid)?.proxy === proxy) this.workloads.upsert(pod);
    return proxy;
  }

  /** Resolves once each pod's 15008 serves or has settled without (no certificate, no mesh): a successor is ready then. */
  async hboneSettled(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((e) => e.proxy.hboneSettled()));
  }

  /** Stops accepting for the pod; its open connections drain on their own. */
  stopPod(uid: string): void {
    const e = this.proxies.get(uid);
    if (!e) return;
    e.proxy.close();
    this.proxies.delete(uid);
    this.workloads.remove(uid);
    this.ctx.http?.dropPod(uid);
  }

  /** The certificate of `id` rotated: the HBONE servers of its pods present the new one from now on. */
  identityRotated(id: string): void {
    const mesh = this.ctx.mesh;
    if (!mesh) return;
    for (const e of this.proxies.values()) if (mesh.spiffeIdOf(e.pod) === id) e.proxy.identityRotated();
  }

  hboneServers(): PodHboneServers[] {
    return [...this.proxies.values()].map((e) => ({ pod: e.pod.name, namespace: e.pod.namespace, servers: e.proxy.hboneStats() }));
  }

  /** xDS: a complete, validated set of one resource type replaces what the proxy reads. */
  applyResources(typeUrl: string, all: AgentResource[]): void {
    if (typeUrl === CDS) {
      this.services.replaceClusters(all.flatMap((r) => (r.kind === 'cluster' ? [r.cluster] : [])));
    } else if (typeUrl === EDS) {
      this.services.replaceEndpoints(new Map(all.flatMap((r) => (r.kind === 'endpoints' ? [[r.cluster, r.endpoints] as const] : []))));
    } else if (typeUrl === LDS) {
      this.services.replaceVips(all.flatMap((r) => (r.kind === 'vip' ? [r.vip] : [])));
      this.authz.replace(new Map(all.flatMap((r) => (r.kind === 'inbound' ? [...r.policies] : []))));
    } else if (typeUrl === RDS) {
      this.routes.replace(all.flatMap((r) => (r.kind === 'routes' ? [r.table] : [])));
    }
  }

  /**
   * xDS: some resources of one type changed (`before` absent: added; `after` absent: removed). Each store takes
   * only what changed; the inbound listener (one per agent: its node's) replaces the policies as a whole.
   */
  updateResources(typeUrl: string, changes: readonly ResourceChange[]): void {
    const before = changes.flatMap((c) => (c.before ? [c.before] : []));
    const after = changes.flatMap((c) => (c.after ? [c.after] : []));
    if (typeUrl === CDS) {
      const names = new Set(after.flatMap((r) => (r.kind === 'cluster' ? [r.cluster.name] : [])));
      this.services.updateClusters(
        before.flatMap((r) => (r.kind === 'cluster' && !names.has(r.cluster.name) ? [r.cluster.name] : [])),
        after.flatMap((r) => (r.kind === 'cluster' ? [r.cluster] : [])),
      );
    } else if (typeUrl === EDS) {
      const m = new Map<string, EndpointInfo[] | undefined>();
      for (const r of before) if (r.kind === 'endpoints') m.set(r.cluster, undefined);
      for (const r of after) if (r.kind === 'endpoints') m.set(r.cluster, r.endpoints);
      this.services.updateEndpoints(m);
    } else if (typeUrl === LDS) {
      this.services.updateVips(
        before.flatMap((r) => (r.kind === 'vip' ? [r.vip] : [])),
        after.flatMap((r) => (r.kind === 'vip' ? [r.vip] : [])),
      );
      if ([...before, ...after].some((r) => r.kind === 'inbound')) {
        this.authz.replace(new Map(after.flatMap((r) => (r.kind === 'inbound' ? [...r.policies] : []))));
      }
    } else if (typeUrl === RDS) {
      const names = new Set(after.flatMap((r) => (r.kind === 'routes' ? [r.table.name] : [])));
      this.routes.update(
        before.flatMap((r) => (r.kind === 'routes' && !names.has(r.table.name) ? [r.table.name] : [])),
        after.flatMap((r) => (r.kind === 'routes' ? [r.table] : [])),
      );
    }
  }

  /**
   * Shutdown or handover: stops accepting on every pod (with `keepHbone`, 15008 goes on accepting: the only way
   * in for peers, see Agent.shutdown); open connections go on, and the pods stay known to them. L7 connections
   * are told to end after their request in flight (`Connection: close`, GOAWAY).
   */
  stopAll(opts: { keepHbone?: boolean } = {}): void {
    for (const e of this.proxies.values()) e.proxy.stopAccepting(opts);
    this.ctx.http?.drain();
  }

  /** Stops accepting on every pod, waits up to `deadlineMs` for open connections; returns how many were left. */
  async drain(deadlineMs: number, opts: { keepHbone?: boolean } = {}): Promise<number> {
    this.stopAll(opts);
    const left = await this.tracker.drain(deadlineMs);
    this.stopAll();
    return left;
  }

  /** After drain: ends what is left (pooled HBONE sessions, the flush timer). */
  destroy(): void {
    this.tracker.stop();
    this.ctx.http?.destroy();
    this.ctx.mesh?.pool.destroy();
    this.ctx.mesh?.handshakes.limiter.close();
  }
}

/** After a handshake flood: memory back to the kernel, and one line saying how much. */
function floodWatch(opts: ProxyRuntimeOptions): FloodWatch | undefined {
  const relieve = opts.relieveMemory;
  if (!relieve) return undefined;
  return {
    over: (connections) => {
      const before = process.memoryUsage.rss();
      relieve();
      const after = process.memoryUsage.rss();
      opts.log.info({ connections, rssBeforeMb: mb(before), rssAfterMb: mb(after) }, "a burst of connections to pods' 15008 is over: memory handed back to the kernel");
    },
  };
}

function mb(bytes: number): number {
  return Math.round(bytes / 104857.6) / 10;
}
