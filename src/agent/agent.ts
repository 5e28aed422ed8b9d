// The node agent's lifecycle: datapath up, reconcile enrolled pods, serve enrollment/admin, drain on SIGTERM.

import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Datapath, PodDatapath } from '../datapath/types';
import { EnrollError, type EnrolledPod, type parseEnrollRequest } from '../enroll/protocol';
import { createEnrollServer, type EnrollmentHandler } from '../enroll/server';
import type { ConnectionTracker } from '../proxy/connection-tracker';
import type { PodProxy } from '../proxy/pod-proxy';
import type { IdentityProvider } from '../identity/types';
import type { KeepaliveTiming } from '../proxy/hbone/h2/session';
import type { HandshakeOptions } from '../proxy/hbone/handshake-limits';
import { ProxyRuntime, type L7Options } from '../proxy/runtime';
import type { ServiceStore } from '../state/services';
import { workloadName, type Workload } from '../state/workloads';
import { registerDatapathMetrics } from '../telemetry/datapath-metrics';
import { isProcessWide, registerDefaultMetrics } from '../telemetry/default-metrics';
import { registerAgentStatusMetrics } from '../telemetry/agent-status-metrics';
import { version as packageVersion } from '../../package.json';
import type { Logger } from '../telemetry/logger';
import { NodemeshError } from '../util/errors';
import { closeServer, createBoundedServer, listenTcp, listenUnix } from '../util/http';
import { createAdminHandler } from '../admin/server';
import { XdsClient, type XdsMode, type XdsSink } from '../xds/ads-client';
import type { AgentResource } from '../xds/agent-resources';
import { PodStateFile } from './pod-state-file';
import type { WorkerStats } from './worker-protocol';
import { DataPlaneWorkers, type WorkerStatus } from './workers';
import { TapHub, type TapDelivery } from '../telemetry/tap/tap-hub';
import type { TapFilter } from '../telemetry/tap/tap-filter';
import { createSpanQueue, type TracingOptions } from '../telemetry/tracing/tracing-config';
import type { SpanQueue } from '../telemetry/tracing/span-queue';
import { Tracer } from '../telemetry/tracing/tracer';
import { buildReport } from '../telemetry/mesh-report/build-report';
import { ReportClient } from '../telemetry/mesh-report/report-client';
import type { AgentReport, EndpointReport } from '../telemetry/mesh-report/telemetry-proto';

export interface AgentOptions {
  node: string;
  stateDir: string;
  pinRoot: string;
  cgroupRoot: string;
  /** TCP ports in the agent's netns on `adminHost`; 0 disables one. */
  adminPort: number;
  metricsPort: number;
  readyPort: number;
  adminHost: string;
  /** Address of the metrics and readiness ports (the node's address in Kubernetes); default `adminHost`. */
  probeHost?: string;
  drainMs: number;
  bufferSize?: number;
  connectTimeoutMs?: number;
  /**
   * Threads that serve pod traffic, the main thread included (default 1). Each serves copies of every pod's
   * listener fds, so connections spread over that many cores; needs the kernel datapath.
   */
  dataThreads?: number;
  /** A worker thread whose event loop has not run for this long is terminated and restarted (default 10 s; 0: never). */
  workerStallTimeoutMs?: number;
  /** L7 for HTTP ports (default on), and which requests get an access line (default all). */
  l7?: L7Options;
  /** After a burst of connections to pods' 15008: memory back to the kernel (the addon's relieveMemory; tests: absent). */
  relieveMemory?: () => void;
  /** `process_*` and `nodejs_*` metrics, every thread's (the CLI turns them on; in-process tests leave them off). */
  defaultMetrics?: boolean;
  /** Spans of sampled and failed requests, exported over OTLP (absent: no tracing). */
  tracing?: TracingOptions;
  /** Stream reports and tapped requests to the control plane at this address (its xDS address); absent: none. */
  telemetry?: { address: string; intervalMs?: number };
  /** Control plane ADS address (`host:port` or `unix:///path`); absent: no services, passthrough only. */
  xds?: { address: string; mode: XdsMode };
  /**
   * Workload identities from the control plane's CA: with them, traffic between mesh pods goes over HBONE
   * (mTLS). Absent: plaintext everywhere.
   */
  mesh?: {
    identity: (registry: Registry) => IdentityProvider;
    trustDomain: string;
    /** HBONE PING liveness, both as client and as server (see HboneClientPoolOptions.keepalive); null: off. Default 10 s + 10 s. */
    keepalive?: KeepaliveTiming | null;
    /** Bounds on TLS handshakes in progress on pods' 15008 (per thread), and their timeout. */
    handshakes?: HandshakeOptions;
  };
}

type ValidRequest = ReturnType<typeof parseEnrollRequest>;

interface PodEntry {
  pod: EnrolledPod;
  dp: PodDatapath;
  proxy: PodProxy;
}

export class Agent implements EnrollmentHandler, XdsSink {
  readonly registry = new Registry();
  /** The main thread's share of the data path. */
  private readonly runtime: ProxyRuntime;
  private readonly identity: IdentityProvider | null = null;
  private workers: DataPlaneWorkers | null = null;
  /** The last accepted set of each xDS type, for workers that start after it arrived. */
  private readonly lastResources = new Map<string, AgentResource[]>();
  private readonly pods = new Map<string, PodEntry>();
  private readonly stateFile: PodStateFile;
  private readonly servers: http.Server[] = [];
  private datapath: Datapath | null = null;
  private xds: XdsClient | null = null;
  private readonly enrollLog: Logger;
  private reconciled = false;
  private stopping = false;
  /** Enrollment calls run one at a time so "nothing half-applied" holds under concurrent callers. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Every thread's spans leave through this one queue (null: tracing off). */
  private readonly spans: SpanQueue | null;
  /** The main thread's live tap (workers have their own; `setTap` reaches all). */
  private readonly tap = new TapHub();
  private tapSink: TapDelivery | null = null;
  private reporter: ReportClient | null = null;
  private readonly startedAtMs = Date.now();
  /** The root logger and its children: pino children do not follow later level changes of their parent. */
  private readonly loggers: Logger[];

  constructor(
    readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly openDatapath: () => Promise<Datapath>,
  ) {
    const proxyLog = log.child({ component: 'proxy' });
    this.enrollLog = log.child({ component: 'enroll' });
    this.loggers = [log, proxyLog, this.enrollLog];
    if (opts.mesh) this.identity = opts.mesh.identity(this.registry);
    if (opts.defaultMetrics) registerDefaultMetrics(this.registry);
    this.spans = opts.tracing ? createSpanQueue(opts.tracing, this.registry, log.child({ component: 'tracing' })) : null;
    const tracer = opts.tracing ? new Tracer({ sampling: opts.tracing.sampling, sink: this.spans, registry: this.registry, node: opts.node }) : null;
    this.runtime = new ProxyRuntime({
      log: proxyLog,
      registry: this.registry,
      bufferSize: opts.bufferSize,
      connectTimeoutMs: opts.connectTimeoutMs,
      mesh: this.identity && opts.mesh ? { identity: this.identity, trustDomain: opts.mesh.trustDomain, keepalive: opts.mesh.keepalive, handshakes: opts.mesh.handshakes } : undefined,
      l7: opts.l7?.enabled,
      accessLog: opts.l7?.accessLog,
      locality: { node: opts.node },
      relieveMemory: opts.relieveMemory,
      tracer,
      tap: this.tap,
    });
    this.identity?.onRotate((id, bundle) => {
      this.runtime.identityRotated(id);
      this.workers?.identityIssued(id, bundle, this.identity!.trustBundle());
    });
    this.stateFile = new PodStateFile(opts.stateDir);
    registerAgentStatusMetrics(this.registry, { ready: () => this.notReadyReason() === null, version: packageVersion });
    registerDatapathMetrics(this.registry, () => this.datapath, this.runtime.workloads, (uid) => this.pods.get(uid)?.dp.netnsCookie);
  }

  get services(): ServiceStore {
    return this.runtime.services;
  }

  /** The main thread's connections (`connections()` has every thread's). */
  get tracker(): ConnectionTracker {
    return this.runtime.tracker;
  }

  private spiffeIdOf(w: { namespace: string; serviceAccount: string }): string | null {
    return this.runtime.ctx.mesh?.spiffeIdOf(w) ?? null;
  }

  get enrollSocket(): string {
    return path.join(this.opts.stateDir, 'enroll.sock');
  }

  get adminSocket(): string {
    return path.join(this.opts.stateDir, 'admin.sock');
  }

  /** Why the agent is not ready, or null when it is. */
  notReadyReason(): string | null {
    if (this.stopping) return 'draining';
    if (!this.datapath) return 'datapath not attached';
    if (!this.reconciled) return 'enrollment not reconciled';
    if (this.xds && !this.xds.synced()) return `waiting for the first complete config from the control plane at ${this.opts.xds!.address}`;
    return null;
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
    // Admin first, so a stuck start can be inspected (/healthz/ready says why it is not ready).
    const bounded = (name: string, only?: string[]): http.Server => createBoundedServer(createAdminHandler(this, this.log, only), { name, log: this.log });
    await this.serve(bounded('admin'), { unix: this.adminSocket });
    if (this.opts.adminPort) await this.serve(bounded('admin'), { port: this.opts.adminPort });
    // Metrics and probes on the node address (Prometheus, the kubelet), each serving only its own paths.
    const probeHost = this.opts.probeHost ?? this.opts.adminHost;
    if (this.opts.metricsPort) await this.serve(bounded('metrics', ['/metrics']), { port: this.opts.metricsPort, host: probeHost });
    if (this.opts.readyPort) await this.serve(bounded('readiness', ['/healthz/ready', '/healthz/live']), { port: this.opts.readyPort, host: probeHost });

    if (this.opts.xds) {
      this.xds = new XdsClient({ ...this.opts.xds, node: this.opts.node, log: this.log.child({ component: 'xds' }), registry: this.registry }, this);
      this.xds.start();
    }
    this.datapath = await this.openDatapath();
    await this.startWorkers();
    await this.reconcile();
    await this.serve(createEnrollServer(this, this.enrollLog), { unix: this.enrollSocket });
    this.tracker.startPeriodicFlush(5_000);
    if (this.opts.telemetry) {
      const reporter = new ReportClient({
        address: this.opts.telemetry.address,
        intervalMs: this.opts.telemetry.intervalMs,
        log: this.log.child({ component: 'telemetry' }),
        report: () => this.telemetryReport(),
        onTap: (filters) => this.setTap(filters, (events, dropped) => reporter.sendTap(events, dropped)),
      });
      this.reporter = reporter;
      reporter.start();
    }
    this.log.info({ node: this.opts.node, pods: this.pods.size, stateDir: this.opts.stateDir }, 'agent ready');
  }

  private async serve(server: http.Server, where: { unix?: string; port?: number; host?: string }): Promise<void> {
    if (where.unix) await listenUnix(server, where.unix);
    else await listenTcp(server, where.port!, where.host ?? this.opts.adminHost);
    this.servers.push(server);
  }

  private async startWorkers(): Promise<void> {
    const threads = this.opts.dataThreads ?? 1;
    if (threads <= 1) return;
    const share = this.datapath!.workerShare?.() ?? null;
    if (!share) {
      this.log.warn({ dataThreads: threads }, 'this datapath cannot be shared with worker threads: serving pods from the main thread only');
      return;
    }
    this.workers = new DataPlaneWorkers({
      count: threads - 1,
      log: this.log.child({ component: 'workers' }),
      registry: this.registry,
      logLevel: () => this.log.level,
      datapath: share,
      bufferSize: this.opts.bufferSize,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      stallTimeoutMs: this.opts.workerStallTimeoutMs,
      defaultMetrics: this.opts.defaultMetrics,
      mesh: this.opts.mesh ? { trustDomain: this.opts.mesh.trustDomain, keepalive: this.opts.mesh.keepalive, handshakes: this.opts.mesh.handshakes } : null,
      l7: this.opts.l7,
      node: this.opts.node,
      tracing: this.opts.tracing,
      onSpans: (spans) => {
        for (const sp of spans) this.spans?.record(sp);
      },
      onTap: (events, dropped) => this.tapSink?.(events, dropped),
    });
    // xDS may have answered while the datapath was opening
    for (const [typeUrl, all] of this.lastResources) this.workers.applyResources(typeUrl, all);
    try {
      await this.workers.start();
      this.log.info({ dataThreads: threads }, 'data-plane worker threads started');
    } catch (err) {
      // The supervisor keeps restarting it with backoff; pods are served from the main thread meanwhile.
      this.log.error({ err }, 'a data-plane worker thread failed to start; serving from the main thread until it does');
    }
  }

  /** Restart path: re-enroll the pods of the previous run, drop those whose netns is gone, prune stale kernel state. */
  private async reconcile(): Promise<void> {
    const previous = this.stateFile.load();
    for (const pod of previous) {
      try {
        await this.applyPod(pod);
      } catch (err) {
        this.log.warn({ err, pod: `${pod.namespace}/${pod.name}`, uid: pod.uid }, 'dropping pod from previous run: it cannot be enrolled again');
      }
    }
    const pruned = await this.datapath!.pruneExcept(
      new Set(this.pods.keys()),
      new Set([...this.pods.values()].map((e) => e.dp.netnsCookie)),
    );
    this.persist();
    this.reconciled = true;
    this.log.info({ restored: this.pods.size, previous: previous.length, pruned }, 'enrollment reconciled');
  }

  enroll(req: ValidRequest): Promise<EnrolledPod> {
    return this.serialized(async () => {
      if (this.stopping) throw new EnrollError('NM_ENROLL_DRAINING', 503, 'agent is shutting down; retry against the next agent');
      const existing = this.pods.get(req.uid);
      if (existing) {
        throw new EnrollError('NM_ENROLL_DUPLICATE', 409, `pod uid ${req.uid} is already enrolled as ${existing.pod.namespace}/${existing.pod.name}`, {
          hint: 'unenroll it first (DELETE /v1/pods/UID) or use a new uid',
        });
      }
      for (const e of this.pods.values()) {
        const clash = req.ips.find((ip) => e.pod.ips.includes(ip));
        if (clash) {
          throw new EnrollError('NM_ENROLL_IP_CONFLICT', 409, `IP ${clash} already belongs to enrolled pod ${e.pod.namespace}/${e.pod.name}`);
        }
      }
      const pod = await this.applyPod({ ...req, netnsCookie: '', enrolledAt: new Date().toISOString() });
      this.persist();
      this.log.info({ pod: `${pod.namespace}/${pod.name}`, uid: pod.uid, ips: pod.ips, netnsCookie: pod.netnsCookie }, 'pod enrolled');
      return pod;
    });
  }

  unenroll(uid: string): Promise<void> {
    return this.serialized(async () => {
      const e = this.pods.get(uid);
      if (!e) throw new EnrollError('NM_ENROLL_UNKNOWN_POD', 404, `no enrolled pod with uid ${uid}`, { hint: 'GET /v1/pods lists enrolled pods' });
      // Kernel state first (new connects go direct), then stop accepting; open connections drain on their own.
      // The datapath forgets the pod and releases its fds even when it reports leftovers (the restart
      // reconcile prunes them), so the pod leaves every thread either way and the error is passed on.
      try {
        await this.datapath!.unenroll(uid);
      } finally {
        this.runtime.stopPod(uid);
        this.workers?.removePod(uid);
        this.pods.delete(uid);
        this.releaseIdentity(e.pod);
        this.persist();
      }
      this.log.info({ pod: `${e.pod.namespace}/${e.pod.name}`, uid }, 'pod unenrolled');
    });
  }

  /** xDS sink: a complete, validated set of one resource type replaces what the proxy reads. */
  apply(typeUrl: string, resources: Map<string, AgentResource>): void {
    const all = [...resources.values()];
    this.runtime.applyResources(typeUrl, all);
    this.lastResources.set(typeUrl, all);
    this.workers?.applyResources(typeUrl, all);
    this.log.debug({ type: typeUrl, count: resources.size }, 'xDS resources applied');
  }

  /** What the control plane's dashboard shows of this agent (see telemetry/mesh-report). */
  async telemetryReport(): Promise<AgentReport> {
    const workers = this.workers ? (await this.workers.stats()).map((w) => w.metrics.filter((m) => !isProcessWide(m.name))) : [];
    const metrics = workers.length === 0 ? await this.registry.getMetricsAsJSON() : await AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...workers]).getMetricsAsJSON();
    const endpoints: EndpointReport[] = [];
    const states = this.runtime.ctx.http?.states;
    const now = Date.now();
    for (const c of this.runtime.services.snapshot().clusters) {
      const cs = states?.peek(c.name);
      for (const ep of c.endpoints) {
        const st = cs?.endpoints.get(`${ep.ip}:${ep.port}`);
        endpoints.push({
          cluster: c.name,
          address: `${ep.ip}:${ep.port}`,
          pod: ep.pod ?? '',
          namespace: ep.namespace ?? '',
          active: st?.active ?? 0,
          ejected: (st?.ejectedUntil ?? 0) > now,
          ejected_until_ms: st?.ejectedUntil ?? 0,
          consecutive_5xx: st?.consecutive5xx ?? 0,
          ejections: st?.ejections ?? 0,
          ewma_ms: st?.ewmaMs ?? 0,
          in_mesh: ep.inMesh,
        });
      }
    }
    const t = this.opts.tracing;
    return buildReport({
      node: this.opts.node,
      version: packageVersion,
      notReadyReason: this.notReadyReason(),
      startedAtMs: this.startedAtMs,
      threads: 1 + (this.workers?.status().length ?? 0),
      pods: this.pods.size,
      metrics,
      xds: this.xdsStatus(),
      identities: this.identity?.status() ?? [],
      endpoints,
      tracing: t && t.endpoint ? { endpoint: t.endpoint.address, defaultPercent: t.sampling.defaultPercent } : null,
    });
  }

  /** Live tap: every thread matches `filters` from now on; batches of matching requests go to `deliver`. */
  setTap(filters: TapFilter[], deliver: TapDelivery): void {
    this.tapSink = deliver;
    this.tap.onDeliver(deliver);
    this.tap.subscribe(filters);
    this.workers?.setTap(filters);
  }

  xdsStatus(): Record<string, unknown> | null {
    return this.xds?.status() ?? null;
  }

  /** Identities (serials, expiry, state), the HBONE client pool and each pod's HBONE server. */
  meshStatus(): Record<string, unknown> | null {
    const mesh = this.runtime.ctx.mesh;
    if (!mesh || !this.identity) return null;
    return {
      trustDomain: mesh.trustDomain,
      identities: this.identity.status(),
      hboneClient: mesh.pool.stats(),
      hboneServers: Object.fromEntries([...this.pods.values()].map((e) => [`${e.pod.namespace}/${e.pod.name}`, e.proxy.hboneStats()])),
      policies: Object.fromEntries([...this.pods.values()].map((e) => [`${e.pod.namespace}/${e.pod.name}`, e.pod.ips.map((ip) => this.runtime.authz.forPodIp(ip))])),
    };
  }

  /**
   * Each worker thread's state and, when it answers, its connections, HBONE pool and servers, and the raw fds
   * it holds. `answering: false` on a running worker means its event loop did not reply within 2 s (stuck or
   * overloaded; the watchdog restarts it once it has been silent for the stall timeout).
   */
  async workersStatus(): Promise<(WorkerStatus & { answering: boolean; connections?: number; heldFds?: number; hboneClient?: WorkerStats['hboneClient']; hboneServers?: WorkerStats['hboneServers'] })[]> {
    if (!this.workers) return [];
    const stats = new Map((await this.workers.stats()).map((s) => [s.index, s]));
    return this.workers.status().map((w) => {
      const s = stats.get(w.index);
      return s
        ? { ...w, answering: true, connections: s.connections.active.length, heldFds: s.heldFds, hboneClient: s.hboneClient, hboneServers: s.hboneServers }
        : { ...w, answering: false };
    });
  }

  /**
   * Prometheus text of every thread. A metric the workers have too gets a `thread` label (0: the main thread)
   * rather than a sum: a restarted worker's counters start again from zero as their own series, which rate()
   * reads as a reset, where a sum going down would read as a huge increase.
   */
  async metricsText(): Promise<string> {
    this.runtime.tracker.flush();
    if (!this.workers) return this.registry.metrics();
    const workers = (await this.workers.stats()).map((w) => ({ ...w, metrics: w.metrics.filter((m) => !isProcessWide(m.name)) }));
    const perThread = new Set(workers.flatMap((w) => w.metrics.map((m) => m.name)));
    const label = (metrics: WorkerStats['metrics'], thread: number): WorkerStats['metrics'] =>
      metrics.map((m) => (perThread.has(m.name) ? { ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, thread } })) } : m));
    const parts = [label(await this.registry.getMetricsAsJSON(), 0), ...workers.map((w) => label(w.metrics, w.index))];
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  /** Open and recently closed connections of every thread (`thread` 0 is the main thread). */
  async connections(): Promise<ReturnType<ConnectionTracker['snapshot']>> {
    const tag = (thread: number, s: ReturnType<ConnectionTracker['snapshot']>) => ({
      active: s.active.map((c) => ({ ...c, thread })),
      recent: s.recent.map((c) => ({ ...c, thread })),
    });
    const all = [tag(0, this.runtime.tracker.snapshot()), ...(this.workers ? await this.workers.stats() : []).map((s) => tag(s.index, s.connections))];
    return { active: all.flatMap((s) => s.active), recent: all.flatMap((s) => s.recent) };
  }

  list(): EnrolledPod[] {
    return [...this.pods.values()].map((e) => e.pod);
  }

  /** Checks, datapath enroll, listeners; on any failure undoes what it did. */
  private async applyPod(pod: EnrolledPod): Promise<EnrolledPod> {
    this.checkPaths(pod);
    const dp = this.datapath!;
    let podDp: PodDatapath;
    try {
      podDp = await dp.enroll({
        uid: pod.uid,
        netnsPath: pod.netnsPath,
        ips: pod.ips,
        failClosed: pod.annotations?.['nodemesh.io/fail-closed'] === 'true',
      });
    } catch (err) {
      if (err instanceof NodemeshError && /NETNS/.test(err.code)) {
        throw new EnrollError('NM_ENROLL_NO_NETNS', 400, err.message, { cause: err });
      }
      throw new EnrollError('NM_ENROLL_DATAPATH', 500, `datapath could not enroll pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`, { cause: err });
    }
    const workload: Workload = {
      uid: pod.uid,
      name: pod.name,
      namespace: pod.namespace,
      serviceAccount: pod.serviceAccount,
      ips: pod.ips,
      labels: pod.labels ?? {},
      annotations: pod.annotations ?? {},
      workloadName: workloadName(pod.name, pod.annotations ?? {}),
    };
    // The first pod of an identity asks the CA for its certificate; HBONE on 15008 starts once it arrives.
    const id = this.spiffeIdOf(workload);
    if (id) this.acquireIdentity(id);
    const l = podDp.listeners;
    let proxy: PodProxy;
    try {
      proxy = await this.runtime.startPod(workload, podDp, {
        outbound: [l.outbound4, l.outbound6].filter((fd): fd is number => fd !== null),
        inbound: [l.inbound4, l.inbound6].filter((fd): fd is number => fd !== null),
        hbone: [l.hbone4, l.hbone6].filter((fd): fd is number => fd !== null),
      });
    } catch (err) {
      this.releaseIdentity(workload);
      await dp.unenroll(pod.uid).catch((e: unknown) => this.log.error({ err: e, uid: pod.uid }, 'rollback of datapath enrollment failed'));
      throw new EnrollError('NM_ENROLL_LISTEN', 500, `cannot serve listeners for pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`, { cause: err });
    }
    const enrolled: EnrolledPod = { ...pod, labels: workload.labels, annotations: workload.annotations, netnsCookie: podDp.netnsCookie.toString() };
    this.pods.set(pod.uid, { pod: enrolled, dp: podDp, proxy });
    this.shareWithWorkers(workload, podDp, proxy);
    return enrolled;
  }

  /** Worker threads serve the pod too; one that cannot only logs it, the pod is still served. */
  private shareWithWorkers(workload: Workload, podDp: PodDatapath, proxy: PodProxy): void {
    if (!this.workers) return;
    try {
      this.workers.addPod(workload, podDp, () => proxy.holdsHbone);
    } catch (err) {
      this.log.error({ err, pod: `${workload.namespace}/${workload.name}` }, 'cannot share the pod with worker threads; the main thread serves it alone');
    }
  }

  private acquireIdentity(id: string): void {
    const identity = this.identity!;
    identity.acquire(id);
    if (!this.workers) return;
    // Issuances reach the workers through onRotate; a failed first issuance only here. A rejection because the
    // last pod of the identity left before its certificate came (the provider no longer manages it) is not a
    // failure for the next pod with this identity.
    this.workers.identityWanted(id);
    identity.certFor(id).catch((err: unknown) => {
      if (identity.status().some((s) => s.spiffeId === id)) this.workers?.identityFailed(id, (err as Error).message);
    });
  }

  private releaseIdentity(pod: { namespace: string; serviceAccount: string }): void {
    const id = this.spiffeIdOf(pod);
    if (!id) return;
    this.identity!.release(id);
    if (![...this.pods.values()].some((e) => this.spiffeIdOf(e.pod) === id)) this.workers?.forgetIdentity(id);
  }

  private checkPaths(pod: EnrolledPod): void {
    if (!fs.existsSync(pod.netnsPath)) {
      throw new EnrollError('NM_ENROLL_NO_NETNS', 400, `network namespace ${pod.netnsPath} does not exist`, {
        hint: 'is the pod sandbox still running? the CNI must pass the netns path of the live pod',
      });
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(pod.cgroupPath);
    } catch {
      throw new EnrollError('NM_ENROLL_NO_CGROUP', 400, `cgroup ${pod.cgroupPath} does not exist`, {
        hint: 'pass the pod\'s cgroup v2 directory (absolute path)',
      });
    }
    if (!st.isDirectory()) throw new EnrollError('NM_ENROLL_NO_CGROUP', 400, `cgroup ${pod.cgroupPath} is not a directory`);
    const rel = path.relative(this.opts.cgroupRoot, pod.cgroupPath);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new EnrollError('NM_ENROLL_CGROUP_OUTSIDE_ROOT', 400, `cgroup ${pod.cgroupPath} is not under the agent's cgroup root ${this.opts.cgroupRoot}`, {
        hint: 'connect-time redirection only applies below --cgroup-root; start the agent with a root that contains pod cgroups',
      });
    }
  }

  private persist(): void {
    this.stateFile.save(this.list());
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  setLogLevel(level: string): void {
    for (const l of this.loggers) l.level = level;
    this.workers?.setLogLevel(level);
  }

  get logLevel(): string {
    return this.log.level;
  }

  datapathStatus(): ReturnType<Datapath['status']> | null {
    return this.datapath?.status() ?? null;
  }

  /**
   * SIGTERM: stop accepting (new connects from pods fail open to direct), let open connections finish up to
   * the drain deadline, then detach every program. The pod list stays on disk for the next agent.
   */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ active: this.tracker.size, drainMs: this.opts.drainMs }, 'shutting down: no longer accepting, draining');
    // Every thread stops accepting at once (in turn with enrollment calls), then each drains its own connections.
    await this.serialized(async () => {
      this.runtime.stopAll();
      this.workers?.stopAccepting();
    });
    const counts = await Promise.all([this.runtime.tracker.drain(this.opts.drainMs), this.workers?.drain(this.opts.drainMs) ?? 0]);
    const left = counts[0] + counts[1];
    if (left > 0) this.log.warn({ left }, 'drain deadline reached; closing remaining connections');
    this.runtime.destroy();
    this.tap.close();
    this.reporter?.close();
    await this.spans?.close(1000);
    this.xds?.close();
    this.identity?.close();
    if (this.datapath) await this.datapath.close({ detach: true });
    this.datapath = null;
    await Promise.all(this.servers.splice(0).map(closeServer));
    this.log.info('agent stopped');
  }
}
