// The node agent's lifecycle: datapath up (taking over from a running agent if there is one), reconcile enrolled
// pods, serve enrollment/admin, hand over to a successor or drain on SIGTERM.

import fs from 'node:fs';
import type http from 'node:http';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Datapath, PodDatapath } from '../datapath/types';
import { EnrollClient } from '../enroll/client';
import { EnrollError, type EnrolledPod, type parseEnrollRequest } from '../enroll/protocol';
import { createEnrollServer, type EnrollmentHandler } from '../enroll/server';
import type { ConnectionTracker } from '../proxy/connection-tracker';
import type { PodProxy } from '../proxy/pod-proxy';
import type { IdentityProvider } from '../identity/types';
import { ProxyRuntime } from '../proxy/runtime';
import type { RouteStore } from '../state/routes';
import type { ServiceStore } from '../state/services';
import { workloadName, type Workload } from '../state/workloads';
import { registerDatapathMetrics } from '../telemetry/datapath-metrics';
import { registerDefaultMetrics } from '../telemetry/default-metrics';
import { registerAgentStatusMetrics } from '../telemetry/agent-status-metrics';
import { version as packageVersion } from '../../package.json';
import type { Logger } from '../telemetry/logger';
import { NodemeshError } from '../util/errors';
import { createBoundedServer } from '../util/http';
import { createAdminHandler } from '../admin/server';
import { XdsClient, type XdsSink } from '../xds/ads-client';
import type { AgentResource, ResourceChange } from '../xds/agent-resources';
import { DEFAULT_HANDOVER_DRAIN_MS, type AgentOptions, type AgentRole } from './agent-options';

export type { AgentOptions, AgentRole } from './agent-options';
import { askToHandOver, HandoverServer, type HandoverChannel } from './handover';
import { Predecessor, type HandingOverAgent } from './predecessor';
import { AgentEndpoints } from './endpoints';
import { checkPodPaths } from './enroll-checks';
import { PodStateFile } from './pod-state-file';
import type { CniAnswer, CniEvent } from '../enroll/cni-protocol';
import type { KubeEnrollment } from './kube-enrollment';
import type { CniLifecycle } from './cni-lifecycle';
import { StateDir } from './state-dir';
import { takeOver, waitForConfig } from './successor';
import { allConnections, allL7Clusters, l7ClustersOf, metricsText, workersStatus, type WorkerReport } from './thread-status';
import { endpointTotals } from '../proxy/http/cluster-report';
import { XdsStateFile } from './xds-state-file';
import { ConfigRelief } from './config-relief';
import { createWorkers, type DataPlaneWorkers } from './workers';
import { TapHub, type TapDelivery } from '../telemetry/tap/tap-hub';
import type { TapFilter } from '../telemetry/tap/tap-filter';
import { createSpanQueue } from '../telemetry/tracing/tracing-config';
import type { SpanQueue } from '../telemetry/tracing/span-queue';
import { Tracer } from '../telemetry/tracing/tracer';
import { buildReport, reportMetrics } from '../telemetry/mesh-report/build-report';
import { ReportClient } from '../telemetry/mesh-report/report-client';
import type { AgentReport, EndpointReport } from '../telemetry/mesh-report/telemetry-proto';


type ValidRequest = ReturnType<typeof parseEnrollRequest>;


/** Instances per process get distinct private socket names (tests run two agents in one process). */
let instances = 0;

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
  /** The last accepted set of each xDS type (read when asked), for workers that start after it arrived. */
  private readonly lastResources = new Map<string, () => AgentResource[]>();
  private readonly relief: ConfigRelief;
  private readonly pods = new Map<string, PodEntry>();
  private readonly stateFile: PodStateFile;
  /** Unix sockets on this agent's own paths, and TCP ports (one agent at a time: they move at the handover). */
  private readonly endpoints: AgentEndpoints;
  private datapath: Datapath | null = null;
  private kube: KubeEnrollment | undefined;
  private cniLifecycle: CniLifecycle | undefined;
  private xds: XdsClient | null = null;
  private readonly enrollLog: Logger;
  private reconciled = false;
  private stopping = false;
  private role: AgentRole = 'starting';
  readonly stateDir: StateDir;
  /** While handing over: enrollment calls go to the successor's own socket. */
  private successor: { pid: number; enrollSocket: string } | null = null;
  private predecessor: { pid: number; channel: HandoverChannel } | null = null;
  private handover: HandoverServer | null = null;
  private readonly predecessorRole: Predecessor;
  /** Resolves when the agent has finished on its own: handed over and drained. */
  readonly exited: Promise<void>;
  private exit!: () => void;
  /**
   * Enrollment calls run one at a time so "nothing half-applied" holds under concurrent callers. The first one
   * waits for the reconcile (a successor gets calls forwarded by its predecessor before it has served any pod).
   */
  private queue: Promise<unknown>;
  private openQueue!: () => void;
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
      mesh: this.identity && opts.mesh ? { identity: this.identity, trustDomain: opts.mesh.trustDomain, keepalive: opts.mesh.keepalive, handshakes: opts.mesh.handshakes, h2: opts.mesh.h2 } : undefined,
      l7: opts.l7?.enabled,
      accessLog: opts.l7?.accessLog,
      httpIdleTimeoutMs: opts.l7?.idleTimeoutMs,
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
    this.relief = new ConfigRelief(opts.relieveMemory, this.log.child({ component: 'xds' }));
    this.stateDir = new StateDir(opts.stateDir, opts.lock ?? null, instances++ === 0 ? String(process.pid) : `${process.pid}-${instances}`);
    this.queue = new Promise<void>((resolve) => (this.openQueue = resolve));
    this.exited = new Promise<void>((resolve) => (this.exit = resolve));
    this.endpoints = new AgentEndpoints(this.stateDir, log);
    this.predecessorRole = new Predecessor(this.handingOver(), log.child({ component: 'handover' }), () =>
      this.role === 'active' && !this.stopping ? null : `this agent is ${this.stopping ? 'stopping' : this.role}`,
    );
    registerAgentStatusMetrics(this.registry, { ready: () => this.notReadyReason() === null, version: packageVersion });
    registerDatapathMetrics(this.registry, () => this.datapath, this.runtime.workloads, (uid) => this.pods.get(uid)?.dp.netnsCookie);
  }

  get services(): ServiceStore {
    return this.runtime.services;
  }

  /** Route tables (RDS) as the main thread holds them. */
  get routes(): RouteStore {
    return this.runtime.routes;
  }

  /** The main thread's connections (`connections()` has every thread's). */
  get tracker(): ConnectionTracker {
    return this.runtime.tracker;
  }

  private spiffeIdOf(w: { namespace: string; serviceAccount: string }): string | null {
    return this.runtime.ctx.mesh?.spiffeIdOf(w) ?? null;
  }

  /** The node's enrollment socket (whichever agent publishes it). */
  get enrollSocket(): string {
    return this.stateDir.publicPath('enroll');
  }

  /** The node's admin socket (whichever agent publishes it); `privateAdminSocket` is always this agent's. */
  get adminSocket(): string {
    return this.stateDir.publicPath('admin');
  }

  get privateAdminSocket(): string {
    return this.stateDir.privatePath('admin');
  }

  /** Why the agent is not ready, or null when it is. */
  notReadyReason(): string | null {
    if (this.role === 'draining') return 'handed over to a new agent; draining';
    if (this.stopping) return 'draining';
    if (!this.datapath) return this.predecessor ? `taking over from agent ${this.predecessor.pid}: ${this.waitingFor}` : 'datapath not attached';
    if (!this.reconciled) return 'enrollment not reconciled';
    if (this.xds && !this.xds.synced()) return `waiting for the first complete config from the control plane at ${this.opts.xds!.address}`;
    if (this.role === 'taking-over') return `taking over from agent ${this.predecessor!.pid}: ${this.waitingFor}`;
    return null;
  }

  private waitingFor = 'starting';

  /** Who this agent is in a handover, for /config_dump. */
  agentStatus(): Record<string, unknown> {
    return {
      pid: process.pid,
      role: this.role,
      predecessor: this.predecessor?.pid ?? null,
      successor: this.successor?.pid ?? null,
      adminSocket: this.privateAdminSocket,
    };
  }

  /**
   * Starts serving. When a running agent answers on handover.sock, this one takes over from it: it serves every
   * pod beside it (listeners join each SO_REUSEPORT group) and only then tells it to stop accepting. Otherwise
   * (first start, or the previous agent crashed or stopped) it adopts the pinned state and pods.json.
   */
  async start(): Promise<void> {
    fs.mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
    this.stateDir.removeStaleSockets();
    await this.stateDir.lockShared();
    // Admin first, so a stuck start can be inspected (/healthz/ready says why it is not ready).
    const bounded = (name: string, only?: string[]): http.Server => createBoundedServer(createAdminHandler(this, this.log, only), { name, log: this.log });
    await this.endpoints.serveUnix('admin', bounded('admin'));
    // Served at once on its private path, but calls wait for the reconcile (the queue opens then).
    await this.endpoints.serveUnix('enroll', createEnrollServer(this, this.enrollLog));
    // Admin on TCP; metrics and probes on the node address (Prometheus, the kubelet), each serving only its own paths.
    const probeHost = this.opts.probeHost ?? this.opts.adminHost;
    const tcp = [
      { port: this.opts.adminPort, host: this.opts.adminHost, make: () => bounded('admin') },
      { port: this.opts.metricsPort, host: probeHost, make: () => bounded('metrics', ['/metrics']) },
      { port: this.opts.readyPort, host: probeHost, make: () => bounded('readiness', ['/healthz/ready', '/healthz/live']) },
    ];

    const asked = await askToHandOver(this.stateDir.publicPath('handover'), { pid: process.pid, enrollSocket: this.stateDir.privatePath('enroll') });
    if (asked && 'refused' in asked) this.log.info({ reason: asked.refused }, 'the running agent does not hand over; starting as after a restart');
    if (asked && 'channel' in asked) {
      this.role = 'taking-over';
      this.predecessor = { pid: asked.predecessor, channel: asked.channel };
      this.log.info({ predecessor: asked.predecessor, pods: asked.pods.length }, 'taking over from the running agent; it serves until this one is ready');
    } else {
      this.stateDir.publish('admin');
      await this.endpoints.serveTcp(tcp);
    }

    if (this.opts.xds) {
      this.xds = new XdsClient(
        {
          ...this.opts.xds,
          node: this.opts.node,
          log: this.log.child({ component: 'xds' }),
          registry: this.registry,
          // the CA lives with the control plane: a certificate request backing off since it went away goes out now
          onConnected: () => this.identity?.retryNow(),
          store: new XdsStateFile(this.opts.stateDir),
        },
        this,
      );
      // applies the config the predecessor saved (it flushed it before answering), before any listener exists
      this.xds.start();
    }
    const pred = this.predecessor;
    this.waitingFor = `waiting for a config (none saved, and the control plane at ${this.opts.xds?.address} has not sent one)`;
    if (pred && !(await waitForConfig(this.xds, () => this.stopping))) return;
    this.waitingFor = 'opening the datapath';
    this.datapath = await this.openDatapath();
    if (this.stopping) return this.release(false); // SIGTERM while starting: shutdown() had nothing to close yet
    const threads = this.opts.dataThreads ?? 1;
    if (threads > 1) {
      const share = this.datapath.workerShare?.() ?? null;
      this.workers = createWorkers({
        threads,
        share,
        log: this.log,
        registry: this.registry,
        agent: this.opts,
        resources: new Map([...this.lastResources].map(([t, all]) => [t, all()])),
        onSpans: (spans) => {
          for (const sp of spans) this.spans?.record(sp);
        },
        onTap: (events, dropped) => this.tapSink?.(events, dropped),
      });
      await this.workers?.start().then(
        () => this.log.info({ dataThreads: threads }, 'data-plane worker threads started'),
        // its supervisor retries; the main thread serves meanwhile
        (err: unknown) => this.log.error({ err }, 'a data-plane worker thread failed to start; serving from the main thread until it does'),
      );
    }
    await this.reconcile(asked && 'channel' in asked ? asked.pods : null);
    this.openQueue();
    if (pred) await takeOver(pred.channel, pred.pid, this.runtime, this.log, (what) => (this.waitingFor = what));
    // a predecessor that died before confirming may have been connecting to an application when it did
    if (pred && pred.channel.closed) this.datapath.dropOwnFlowsOf?.(pred.pid);
    if (this.stopping) return this.release(false);
    this.stateDir.publish('admin');
    this.stateDir.publish('enroll');
    if (!this.endpoints.tcpServing) await this.endpoints.serveTcp(tcp, true);
    this.handover = new HandoverServer(this.predecessorRole, this.log.child({ component: 'handover' }));
    await this.endpoints.serveUnix('handover', this.handover.server);
    this.stateDir.publish('handover');
    this.role = 'active';
    await this.serialized(async () => this.persist());
    if (this.opts.kubernetes) await this.startKubernetes(this.opts.kubernetes);
    this.tracker.startPeriodicFlush(5_000);
    if (this.opts.telemetry) {
      const reporter = new ReportClient({
        address: this.opts.telemetry.address,
        tls: this.opts.telemetry.address === this.opts.xds?.address ? this.opts.xds.tls : undefined,
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

  /** Loaded only with --kubernetes: an agent without it carries no Kubernetes client. */
  private async startKubernetes(k: NonNullable<AgentOptions['kubernetes']>): Promise<void> {
    const { KubeEnrollment } = await import('./kube-enrollment');
    this.kube = new KubeEnrollment(this, { node: this.opts.node, kubeconfig: k.kubeconfig, procRoot: k.procRoot, cgroupRoot: this.opts.cgroupRoot, log: this.log.child({ component: 'kubernetes' }) });
    await this.kube.start();
    if (k.cni) {
      const { CniLifecycle } = await import('./cni-lifecycle');
      this.cniLifecycle = new CniLifecycle(k.cni, this.log.child({ component: 'cni' }));
      this.cniLifecycle.start();
    }
  }

  /** nodemesh-cni's ADD/DEL/CHECK (enrollment socket, POST /v1/cni). */
  cni(ev: CniEvent): Promise<CniAnswer> {
    if (!this.kube) {
      return Promise.reject(new EnrollError('NM_ENROLL_NO_POD_SOURCE', 501, 'this agent does not watch the Kubernetes API', { hint: 'start it with --kubernetes' }));
    }
    return this.kube.cni(ev);
  }

  /** Kubernetes enrollment counters, null without --kubernetes. */
  kubernetesStatus(): Record<string, unknown> | null {
    return this.kube ? { ...this.kube.stats, cni: this.cniLifecycle?.status() ?? null } : null;
  }

  /**
   * Restart path: re-enroll the pods of the previous run (or, taking over, those the predecessor serves), drop
   * those whose netns is gone, prune stale kernel state.
   */
  private async reconcile(fromPredecessor: EnrolledPod[] | null): Promise<void> {
    this.waitingFor = 'serving the pods';
    const previous = fromPredecessor ?? this.stateFile.load();
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
    // A successor writes the pods file only once it serves the node: should it die first, the predecessor's
    // list stays the truth. Without one, nobody is connecting: flows a killed agent left registered go.
    if (!this.predecessor) {
      this.persist();
      const stale = this.datapath!.clearOwnFlows?.() ?? 0;
      if (stale > 0) this.log.info({ stale }, 'dropped transparent flows registered by an earlier agent');
    }
    this.reconciled = true;
    this.log.info({ restored: this.pods.size, previous: previous.length, pruned }, 'enrollment reconciled');
  }

  enroll(req: ValidRequest): Promise<EnrolledPod> {
    return this.serialized(async () => {
      if (this.successor) return new EnrollClient(this.successor.enrollSocket).enroll(req);
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
      if (this.successor) return new EnrollClient(this.successor.enrollSocket).unenroll(uid);
      const e = this.pods.get(uid);
      if (!e) throw new EnrollError('NM_ENROLL_UNKNOWN_POD', 404, `no enrolled pod with uid ${uid}`, { hint: 'GET /v1/pods lists enrolled pods' });
      // Kernel state first (new connects go direct), then stop accepting; open connections drain on their own.
      // The datapath forgets the pod and releases its fds even when it reports leftovers (the restart
      // reconcile prunes them), so the pod leaves every thread either way and the error is passed on.
      try {
        await this.datapath!.unenroll(uid);
      } finally {
        this.forgetPod(uid);
        this.releaseIdentity(e.pod);
        this.persist();
      }
      this.log.info({ pod: `${e.pod.namespace}/${e.pod.name}`, uid }, 'pod unenrolled');
    });
  }

  /** xDS sink: a complete, validated set of one resource type replaces what the proxy reads. */
  apply(typeUrl: string, resources: Map<string, AgentResource>, all: () => Map<string, AgentResource>): void {
    const list = [...resources.values()];
    this.runtime.applyResources(typeUrl, list);
    this.relief.committed(list.length);
    this.lastResources.set(typeUrl, () => [...all().values()]);
    this.workers?.applyResources(typeUrl, list);
    this.log.debug({ type: typeUrl, count: resources.size }, 'xDS resources applied');
  }

  /** xDS sink: what changed in one type. Worker threads (--concurrency above 1) are still given the whole set. */
  update(typeUrl: string, changes: ResourceChange[], all: () => Map<string, AgentResource>): void {
    if (changes.length === 0) return;
    this.runtime.updateResources(typeUrl, changes);
    this.relief.committed(changes.length);
    this.lastResources.set(typeUrl, () => [...all().values()]);
    this.workers?.applyResources(typeUrl, [...all().values()]);
    this.log.debug({ type: typeUrl, changed: changes.length }, 'xDS resources updated');
  }

  /** What the control plane's dashboard shows of this agent (see telemetry/mesh-report). */
  async telemetryReport(): Promise<AgentReport> {
    const stats = this.workers ? await this.workers.stats({ reportOnly: true }) : [];
    const workers = stats.map((w) => w.metrics);
    const own = await reportMetrics(this.registry);
    const metrics = workers.length === 0 ? own : await AggregatorRegistry.aggregate([own, ...workers]).getMetricsAsJSON();
    // The endpoints' state over every thread, as /config_dump's l7Clusters shows it per thread. Only clusters
    // some thread sent requests to: every endpoint of every cluster (at 10,000 Services and the workload
    // directory, ~40,000 every 2 s) kept the agent's CPU busy and its RSS several times its config's size.
    const totals = endpointTotals(l7ClustersOf(this.runtime, stats));
    const endpoints: EndpointReport[] = [];
    for (const [cluster, byEndpoint] of totals) {
      for (const ep of this.runtime.services.endpointsOf(cluster)) {
        const t = byEndpoint.get(`${ep.ip}:${ep.port}`);
        endpoints.push({
          cluster,
          address: `${ep.ip}:${ep.port}`,
          pod: ep.pod ?? '',
          namespace: ep.namespace ?? '',
          active: t?.active ?? 0,
          ejected: (t?.ejectedUntilMs ?? 0) > 0,
          ejected_until_ms: t?.ejectedUntilMs ?? 0,
          consecutive_5xx: t?.consecutive5xx ?? 0,
          ejections: t?.ejections ?? 0,
          ewma_ms: t?.ewmaMs ?? 0,
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
      xds: this.xds?.summary() ?? null,
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

  workersStatus(): Promise<WorkerReport[]> {
    return workersStatus(this.workers);
  }

  metricsText(): Promise<string> {
    return metricsText(this.registry, this.runtime, this.workers);
  }

  connections(): Promise<ReturnType<ConnectionTracker['snapshot']>> {
    return allConnections(this.runtime, this.workers);
  }

  /** Per thread and cluster: L7 requests in flight and each endpoint's outlier state. */
  l7Clusters(): ReturnType<typeof allL7Clusters> {
    return allL7Clusters(this.runtime, this.workers);
  }

  list(): EnrolledPod[] {
    return [...this.pods.values()].map((e) => e.pod);
  }

  /** Checks, datapath enroll, listeners; on any failure undoes what it did. */
  private async applyPod(pod: EnrolledPod): Promise<EnrolledPod> {
    checkPodPaths(pod, this.opts.cgroupRoot);
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

  // ---- handing over to a successor (HandingOverAgent, see predecessor.ts) --------------------------------------

  private handingOver(): HandingOverAgent {
    return {
      serialized: (fn) => this.serialized(fn),
      held: () => new Map([...this.pods].map(([uid, e]) => [uid, e.pod])),
      listed: () => this.stateFile.load(),
      setRole: (role) => {
        this.role = role;
      },
      forwardEnrollment: (to) => {
        this.successor = to;
      },
      saveState: () => {
        this.persist();
        this.xds?.flush();
      },
      stopAndLeave: async () => {
        // the successor reconciles the node's pods from the API now (both doing it would race)
        this.kube?.close();
        this.runtime.stopAll();
        this.workers?.stopAccepting();
        this.identity?.stopPersisting();
        this.xds?.stopSaving();
        await this.endpoints.closeTcp();
        this.handover?.close();
        this.stateDir.unlock();
      },
      drainAndExit: async () => {
        const deadline = this.opts.handoverDrainMs ?? DEFAULT_HANDOVER_DRAIN_MS;
        this.log.info({ active: this.tracker.size, deadlineMs: deadline }, 'draining: open connections go on until they end or the deadline');
        const left = await this.drainConnections(deadline, false);
        if (left > 0) this.log.warn({ left }, 'handover drain deadline reached; closing remaining connections');
        // enrollment calls still being forwarded to the successor get their answers first
        await this.serialized(async () => undefined);
        await this.release(false);
        this.log.info('agent stopped after handing over');
        this.exit();
      },
      reassertDatapath: (successorPid) => {
        this.datapath?.reassert?.();
        this.datapath?.dropOwnFlowsOf?.(successorPid);
      },
      serve: async (pod) => {
        await this.applyPod(pod);
      },
      remove: async (uid) => {
        const e = this.pods.get(uid)!;
        await this.datapath!.unenroll(uid).catch((err: unknown) => this.log.warn({ err, uid }, 'unenrolling a pod the successor had removed left state behind'));
        this.forgetPod(uid);
        this.releaseIdentity(e.pod);
      },
      letGo: (uid) => {
        const e = this.pods.get(uid)!;
        this.forgetPod(uid);
        this.datapath?.forget?.(uid);
        this.log.info({ pod: `${e.pod.namespace}/${e.pod.name}`, uid }, 'pod removed by the successor agent; released here');
      },
      republish: () => {
        for (const name of ['admin', 'enroll', 'handover'] as const) this.stateDir.publish(name);
      },
    };
  }

  /** Stops serving the pod on every thread (open connections go on) and forgets it. */
  private forgetPod(uid: string): void {
    this.runtime.stopPod(uid);
    this.workers?.removePod(uid);
    this.pods.delete(uid);
  }

  // ---- stopping ----------------------------------------------------------------------------------------------

  /**
   * SIGTERM. Handed over already: the drain goes on (to its own deadline), nothing changes. A handover under way
   * settles first. Taking over: abandon it (the predecessor carries on) without touching the datapath.
   * Otherwise, without a successor:
   * 1. Every pod is marked draining in the datapath: new connects from pods fail open (direct), or closed for
   *    fail-closed pods, and inbound plaintext reaches the app directly, while the listeners are still open, so
   *    nothing queued on them is lost when they close.
   * 2. 15001 and 15006 close; 15008 goes on accepting through the drain: peers' HBONE has no other way in, and
   *    closing it would refuse them for the whole drain and restart (client agents retry refused dials for a
   *    while, covering a restart but not a drain).
   * 3. Open connections drain up to the deadline, then every program is detached, unless another agent has
   *    started meanwhile (it holds the datapath lock): then the pinned state is left to it.
   */
  async shutdown(): Promise<void> {
    if (this.role === 'draining') return this.exited;
    if (this.predecessorRole.settled) await this.predecessorRole.settled;
    if ((this.role as AgentRole) === 'draining') return this.exited;
    if (this.stopping) return;
    this.stopping = true;
    if (this.role === 'taking-over' || (this.predecessor && !this.reconciled)) {
      this.log.info({ predecessor: this.predecessor?.pid }, 'stopping before the handover completed; the running agent carries on');
      this.predecessor?.channel.close();
      this.xds?.stopSaving();
      this.runtime.stopAll();
      await this.release(false);
      return;
    }
    this.role = 'stopping';
    this.log.info({ active: this.tracker.size, drainMs: this.opts.drainMs }, 'shutting down: no longer accepting (15008 until the drain ends), draining');
    this.handover?.close();
    this.stateDir.unpublish('handover');
    await this.serialized(async () => {
      try {
        this.datapath?.markDraining?.();
      } catch (err) {
        this.log.warn({ err }, 'cannot mark the pods draining; closing their listeners anyway');
      }
    });
    // connections whose handshake was under way at the flip land in the queues and are accepted
    await new Promise((r) => setTimeout(r, 200));
    this.runtime.stopAll({ keepHbone: true });
    this.workers?.stopAccepting({ keepHbone: true });
    const left = await this.drainConnections(this.opts.drainMs, true);
    if (left > 0) this.log.warn({ left }, 'drain deadline reached; closing remaining connections');
    // Another agent that started during the drain holds the lock shared: the datapath is its now.
    const detach = this.stateDir.tryLockExclusive();
    if (!detach) this.log.info('another agent started meanwhile: leaving the pinned datapath to it');
    await this.release(detach);
    this.log.info('agent stopped');
  }

  /** Waits for every thread's connections (up to `deadlineMs`); returns how many were left. */
  private async drainConnections(deadlineMs: number, keepHbone: boolean): Promise<number> {
    const counts = await Promise.all([this.runtime.drain(deadlineMs, { keepHbone }), this.workers?.drain(deadlineMs, { keepHbone }) ?? 0]);
    return counts[0] + counts[1];
  }

  /** Ends everything this agent holds; `detach`: the datapath too (programs and pins), else its handles only. */
  private async release(detach: boolean): Promise<void> {
    this.runtime.destroy();
    this.tap.close();
    this.reporter?.close();
    await this.spans?.close(1000);
    this.kube?.close();
    await this.cniLifecycle?.stop();
    this.xds?.close();
    this.relief.close();
    this.identity?.close();
    this.handover?.destroy();
    if (this.datapath) await this.datapath.close({ detach });
    this.datapath = null;
    await this.endpoints.closeAll();
    this.stateDir.unlock();
  }
}
