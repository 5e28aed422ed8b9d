// Wires the control plane: sources -> store -> model -> xDS snapshot -> ADS server, plus metrics and debug HTTP.

import type { Metadata } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../telemetry/logger';
import { toDebugJson } from '../xds/protos';
import { typeShortName, XDS_TYPE_URLS } from '../xds/resource-types';
import { AdsServer, DEFAULT_MAX_NAMES_PER_TYPE } from './ads-server';
import { XDS_MAX_MESSAGE_BYTES, XDS_RESPONSE_TARGET_BYTES } from '../xds/limits';
import { startCertificateAuthority, type CaHandle, type CaServerOptions } from './ca/ca-server';
import { ConflictReporter } from './conflicts';
import { ControlPlaneError, CP_ERR, formatIssue, type ConfigIssue } from './errors';
import { certificateService } from '../identity/ca-proto';
import { startRootPublisher, type RootPublisher } from './ca/root-publisher';
import { FileSource, type ConfigSink, type ConfigSource } from './file-source';
import { HeapGrowth } from './heap-growth';
import { ControlPlaneHttpServer } from './http-server';
import { apiServerInformers, KubernetesSource, type InformerFactory } from './kubernetes-source';
import { ControlPlaneMetrics } from './metrics';
import { meshPods } from './membership';
import { buildModel, ModelCache } from './model';
import { policyObjects } from './policy';
import { buildRouteModel, DefaultTableCache, invalidIssues, storedRoutes } from './routes/route-tables';
import { buildTrafficModel, routeExtras, storedDestinationRules, type DestinationRuleStatus } from './traffic/traffic-model';
import type { RouteStatus } from './routes/route-status';
import { apiServerRouteStatus, RouteStatusWriter, type RouteStatusApi } from './routes/status-writer';
import { ObjectStore, type SourceUpdate } from './store';
import { translate, type Snapshot, type XdsResource } from './translate';
import { TranslationMemo } from './translate-memo';
import { VipAllocator } from './vip-allocator';
import { OtlpReceiver } from './observe/otlp-receiver';
import { TraceStore, type TraceStoreOptions } from './observe/trace-store';
import { MeshDirectory } from './observe/mesh-directory';
import { TapBroker } from './observe/tap-broker';
import { TelemetryService } from './observe/telemetry-service';
import { startDashboard, type DashboardHandle, type DashboardListen } from './observe/dashboard-listen';

export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15010';
export const DEFAULT_METRICS_PORT = 15014;
/** /debug/config lists objects and resources in full up to this many of each. */
const DEBUG_DETAIL_LIMIT = 2000;
/** Where Kubernetes-source routes come from (their origin file is their API path). */
const ROUTE_API_PREFIX = '/apis/gateway.networking.k8s.io/';

export interface ControlPlaneOptions {
  /** YAML files or directories to load and watch. */
  config?: string | string[];
  /** List/watch the Kubernetes API; `true` uses in-cluster credentials or the default kubeconfig. */
  kubernetes?: boolean | { kubeconfig?: string; informers?: InformerFactory; routeStatus?: RouteStatusApi | false };
  /** `host:port` (port 0: any free port) or `unix:///path`. Default 127.0.0.1:15010. */
  xdsAddress?: string;
  /** HTTP port for /metrics and /debug/config; 0 picks a free port, false turns it off. Default 15014. */
  metricsPort?: number | false;
  metricsHost?: string;
  /** Quiet time after a store change before the new snapshot is pushed. Default 30 ms. */
  pushDebounceMs?: number;
  /** Quiet time after a file event before the file is re-read. Default 40 ms. */
  watchDebounceMs?: number;
  /** Kubernetes cluster domain used in service host names. Default cluster.local. */
  domain?: string;
  logger?: Logger;
  logLevel?: string;
  registry?: Registry;
  /** Run the CA: CertificateService on the xDS listener (and on `ca.tlsAddress` with TLS). Off when absent. */
  ca?: CaServerOptions;
  /** The embedded trace backend (OTLP in on the gRPC listener, the last traces in memory). Default on. */
  traces?: TraceStoreOptions | false;
  /** Where the dashboard (UI, API, live tap, OTLP/HTTP) listens; absent or false: not served. */
  dashboard?: DashboardListen | false;
  /** A Prometheus the dashboard reads history from (`http://host:9090`). */
  prometheusUrl?: string;
  /**
   * Serve xDS, the CA and health over TLS here (`host:port`), with a serving certificate from the CA; each ADS
   * stream must carry a node credential (the agent's projected token) naming the node it asks for. Needs `ca`.
   */
  secureAddress?: string;
  /** Publish the CA root as a ConfigMap of this name in every namespace (needs `kubernetes` and `ca`). */
  rootConfigMap?: string;
  /** How long `detect` ports wait for a client's first bytes (DEFAULT_DETECT_TIMEOUT_MS, 100 ms). */
  detectTimeoutMs?: number;
  /**
   * The largest xDS message sent or received (XDS_MAX_MESSAGE_BYTES, 4 MiB): agents must accept at least this
   * much (their --xds-max-message-bytes); responses are packed well below it.
   */
  xdsMaxMessageBytes?: number;
  /**
   * Keep the V8 heap's growth at about this many MB over what it holds (`HeapGrowth`); absent: V8's own
   * factor. Sets a process-wide V8 flag: the CLI's control plane passes it, one embedded in a test does not.
   */
  heapHeadroomMB?: number;
}

export interface ControlPlaneHandle {
  /** What xDS clients dial: `host:port` or `unix:///path`. */
  readonly address: string;
  /** Bound metrics port, undefined when off. */
  readonly metricsPort: number | undefined;
  readonly store: ObjectStore;
  readonly metrics: ControlPlaneMetrics;
  /** The CA, when `ca` was given. */
  readonly ca: CaHandle | undefined;
  /** Traces received over OTLP, when the embedded backend is on. */
  readonly traces: TraceStore | undefined;
  readonly otlp: OtlpReceiver | undefined;
  /** What the agents report over the telemetry stream, and the live tap's subscriptions. */
  readonly mesh: MeshDirectory;
  readonly tap: TapBroker;
  /** Where the dashboard listens (`http://127.0.0.1:15080`), undefined when off. */
  readonly dashboardUrl: string | undefined;
  /** Bound TLS address (xDS + CA), when `secureAddress` was given. */
  readonly secureAddress: string | undefined;
  /** The snapshot currently served. */
  snapshot(): Snapshot;
  /** Same document as GET /debug/config. */
  debugConfig(): unknown;
  /** Every HTTPRoute's and GRPCRoute's status (Accepted, ResolvedRefs per Service parent), as last computed. */
  routeStatus(): RouteStatus[];
  /** Every DestinationRule: the Service ports it applies to, or why it applies to none. */
  destinationRuleStatus(): DestinationRuleStatus[];
  /** Stops sources, ends every xDS stream, closes the HTTP server. */
  close(): Promise<void>;
}

class ControlPlane implements ControlPlaneHandle, ConfigSink {
  address = '';
  metricsPort: number | undefined;
  readonly store = new ObjectStore();
  readonly metrics: ControlPlaneMetrics;
  private readonly vips = new VipAllocator();
  private readonly conflicts: ConflictReporter;
  private current: Snapshot;
  /** What translation built last time, so a rebuild encodes only what changed. */
  private readonly memo = new TranslationMemo();
  /** What the model and the route tables keep between rebuilds, for the same reason. */
  private readonly modelCache = new ModelCache();
  private readonly defaultTables = new DefaultTableCache();
  private readonly heap: HeapGrowth | undefined;
  private readonly ads: AdsServer;
  private http: ControlPlaneHttpServer | undefined;
  ca: CaHandle | undefined;
  readonly traces: TraceStore | undefined;
  readonly otlp: OtlpReceiver | undefined;
  private readonly telemetry: TelemetryService;
  readonly mesh = new MeshDirectory();
  readonly tap = new TapBroker();
  private dashboard: DashboardHandle | undefined;
  secureAddress: string | undefined;
  private publisher: RootPublisher | undefined;
  private readonly sources: ConfigSource[] = [];
  private timer: NodeJS.Timeout | undefined;
  private builtGeneration = -1;
  private issuesVersion = 0;
  private builtIssuesVersion = -1;
  private routes: RouteStatus[] = [];
  private destinationRules: DestinationRuleStatus[] = [];
  /** Unmatched DestinationRules already warned about (key + why), so each is logged once per change. */
  private unmatchedLogged = new Set<string>();
  private statusWriter: RouteStatusWriter | undefined;
  private closed = false;
  readonly id = `nodemesh-controlplane-${randomBytes(4).toString('hex')}`;

  constructor(
    private readonly opts: ControlPlaneOptions,
    private readonly log: Logger,
  ) {
    this.metrics = new ControlPlaneMetrics(opts.registry ?? new Registry());
    this.heap = opts.heapHeadroomMB === undefined ? undefined : new HeapGrowth(opts.heapHeadroomMB);
    this.conflicts = new ConflictReporter(this.store, this.metrics, log.child({ component: 'config' }));
    this.current = translate({ services: [], workloadsByNode: new Map() }, {}, this.memo);
    this.ads = new AdsServer({
      view: { snapshot: () => this.current, systemVersion: () => String(this.builtGeneration) },
      metrics: this.metrics,
      log: log.child({ component: 'xds' }),
      controlPlaneId: this.id,
      limits: {
        maxMessageBytes: opts.xdsMaxMessageBytes ?? XDS_MAX_MESSAGE_BYTES,
        targetBytes: Math.min(XDS_RESPONSE_TARGET_BYTES, Math.floor((opts.xdsMaxMessageBytes ?? XDS_MAX_MESSAGE_BYTES) / 4)),
        maxNamesPerType: DEFAULT_MAX_NAMES_PER_TYPE,
      },
    });
    this.store.onChange(() => this.schedule());
    if (opts.traces !== false) {
      this.traces = new TraceStore(opts.traces ?? {});
      this.otlp = new OtlpReceiver(this.traces, this.metrics.registry, log.child({ component: 'otlp' }));
      const svc = this.otlp.grpcService();
      this.ads.addService(svc.definition, svc.handlers);
    }
    this.telemetry = new TelemetryService(this.mesh, this.tap, this.metrics.registry, log.child({ component: 'telemetry' }));
    const telemetry = this.telemetry.grpcService();
    this.ads.addService(telemetry.definition, telemetry.handlers);
  }

  get dashboardUrl(): string | undefined {
    return this.dashboard?.url;
  }

  // ConfigSink: the single path every source's output takes into the store.
  apply(update: SourceUpdate): void {
    const issuesBefore = JSON.stringify(this.store.issues());
    const r = this.store.apply(update);
    this.issuesChanged(issuesBefore);
    const fatal = (update.fatal?.length ?? 0) > 0;
    for (const issue of r.issues) this.reportIssue(issue, fatal ? 'syntax' : issue.message.startsWith('duplicate') ? 'duplicate' : 'invalid');
    if (fatal && r.keptLastGood.length > 0) {
      this.log.warn({ source: update.source, kept: r.keptLastGood.length }, 'keeping the previous objects of this source until it parses again');
    }
    for (const key of fatal ? [] : r.keptLastGood) this.log.warn({ source: update.source, object: key }, 'keeping the last good version of this object');
    for (const d of r.ignored) this.log.debug({ kind: d.kind, apiVersion: d.apiVersion, file: d.file, line: d.line }, 'ignoring unknown kind');
    this.updateObjectGauges();
  }

  remove(source: string): void {
    const issuesBefore = JSON.stringify(this.store.issues());
    this.store.removeSource(source);
    this.issuesChanged(issuesBefore);
    this.updateObjectGauges();
  }

  /**
   * A route turning invalid keeps its last good version, so the store's content (and generation) stays the same;
   * its status must still say Accepted=False. Issue changes therefore rebuild too.
   */
  private issuesChanged(before: string): void {
    if (JSON.stringify(this.store.issues()) === before) return;
    this.issuesVersion++;
    this.schedule();
  }

  private reportIssue(issue: ConfigIssue, reason: 'syntax' | 'invalid' | 'duplicate'): void {
    this.metrics.configErrors.inc({ reason });
    this.log.error({ file: issue.file, line: issue.line, field: issue.field || undefined, kind: issue.kind, name: issue.name }, `config rejected: ${formatIssue(issue)}`);
  }

  private updateObjectGauges(): void {
    this.metrics.objects.reset();
    for (const [kind, n] of Object.entries(this.store.countsByKind())) this.metrics.objects.set({ kind }, n);
  }

  async start(): Promise<void> {
    const configs = this.opts.config === undefined ? [] : Array.isArray(this.opts.config) ? this.opts.config : [this.opts.config];
    for (const c of configs) this.sources.push(new FileSource(c, this, this.log.child({ component: 'config' }), this.opts.watchDebounceMs ?? 40));
    if (this.opts.kubernetes) {
      const k = typeof this.opts.kubernetes === 'object' ? this.opts.kubernetes : {};
      const informers = k.informers ?? (await apiServerInformers(k.kubeconfig));
      this.sources.push(new KubernetesSource(informers, this, this.log.child({ component: 'kubernetes' }), { debounceMs: this.opts.watchDebounceMs ?? 40 }));
      // Route status goes back to the API objects it describes (false: the caller does not want it written).
      if (k.routeStatus !== false) {
        const api = k.routeStatus ?? (await apiServerRouteStatus(k.kubeconfig));
        this.statusWriter = new RouteStatusWriter(api, this.log.child({ component: 'route-status' }), { fromApi: (st) => st.origin?.file.startsWith(ROUTE_API_PREFIX) ?? false });
      }
    }
    for (const s of this.sources) await s.start();
    // First snapshot before listening, so the first client gets the whole config at once.
    this.rebuild();
    if (this.opts.ca) {
      this.ca = await startCertificateAuthority(
        {
          ...this.opts.ca,
          // With --kubernetes and no token file, agents authenticate with ServiceAccount tokens.
          kubernetes:
            this.opts.ca.kubernetes ??
            (this.opts.kubernetes && this.opts.ca.nodeTokensFile === undefined
              ? { kubeconfig: typeof this.opts.kubernetes === 'object' ? this.opts.kubernetes.kubeconfig : undefined }
              : undefined),
        },
        {
          store: this.store,
          registry: this.metrics.registry,
          log: this.log.child({ component: 'ca' }),
          register: (definition, handlers) => this.ads.addService(definition, handlers),
        },
      );
    }
    this.address = await this.ads.listen(this.opts.xdsAddress ?? DEFAULT_XDS_ADDRESS);
    if (this.opts.secureAddress !== undefined) {
      const ca = this.ca;
      if (!ca) throw new ControlPlaneError(CP_ERR.LISTEN, 'serving xDS over TLS needs the CA', { hint: 'give --ca-secret, --ca-dir or --ca-cert/--ca-key with --secure-address' });
      const creds = await ca.servingCredentials(this.opts.secureAddress, this.opts.ca?.tlsNames ?? []);
      const nodeOf = async (md: Metadata): Promise<string> => (await ca.authenticator.authenticate(md)).node;
      this.secureAddress = await this.ads.listenSecure(
        this.opts.secureAddress,
        creds,
        { authenticate: nodeOf },
        [
          { definition: certificateService().service, handlers: ca.handlers },
          // agents dial their telemetry stream and span export where they dial xDS: on this port, with its credential
          this.telemetry.grpcService(nodeOf),
          ...(this.otlp ? [this.otlp.grpcService(nodeOf)] : []),
        ],
      );
    }
    if (this.opts.rootConfigMap !== undefined && this.ca && this.opts.kubernetes) {
      const ca = this.ca;
      this.publisher = await startRootPublisher({
        name: this.opts.rootConfigMap,
        rootPem: () => ca.rootPem,
        kubeconfig: typeof this.opts.kubernetes === 'object' ? this.opts.kubernetes.kubeconfig : undefined,
        log: this.log.child({ component: 'root-publisher' }),
      });
    }
    const mport = this.opts.metricsPort ?? DEFAULT_METRICS_PORT;
    if (mport !== false) {
      this.http = new ControlPlaneHttpServer(this.metrics.registry, this, this.log.child({ component: 'http' }));
      this.metricsPort = await this.http.listen(mport, this.opts.metricsHost ?? '127.0.0.1');
    }
    if (this.opts.dashboard) {
      this.dashboard = await startDashboard(this.opts.dashboard, {
        dir: this.mesh,
        tap: this.tap,
        traces: this.traces,
        otlp: this.otlp,
        store: this.store,
        log: this.log.child({ component: 'dashboard' }),
        prometheusUrl: this.opts.prometheusUrl,
      });
    }
    this.log.info(
      { xds: this.address, secure: this.secureAddress, ca: this.ca ? (this.ca.tlsAddress ?? 'xds') : undefined, metricsPort: this.metricsPort, dashboard: this.dashboard?.url, objects: this.store.countsByKind(), sources: this.store.sourceNames().length },
      'control plane serving',
    );
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.rebuild();
      this.ads.push();
    }, this.opts.pushDebounceMs ?? 30);
  }

  private rebuild(): void {
    if (this.builtGeneration === this.store.generation && this.builtIssuesVersion === this.issuesVersion) return;
    try {
      const model = buildModel(this.store.services(), meshPods(this.store), this.vips, this.opts.domain, policyObjects(this.store), this.modelCache);
      model.traffic = buildTrafficModel(model.services, storedDestinationRules(this.store), this.opts.domain);
      model.routes = buildRouteModel(model.services, storedRoutes(this.store), invalidIssues(this.store.issues()), routeExtras(this.store, model.traffic), this.defaultTables);
      const started = performance.now();
      this.current = translate(model, { detectTimeoutMs: this.opts.detectTimeoutMs }, this.memo, this.current);
      this.metrics.translateSeconds.observe((performance.now() - started) / 1000);
      this.metrics.translatedPieces.inc({ result: 'built' }, this.memo.built);
      this.metrics.translatedPieces.inc({ result: 'reused' }, this.memo.reused);
      this.routes = model.routes.status;
      this.statusWriter?.update(this.routes);
      this.reportDestinationRules(model.traffic.destinationRules);
      this.builtGeneration = this.store.generation;
      this.conflicts.update({ vip: model.vipConflicts ?? [], podIp: model.podIpConflicts ?? [], duplicates: this.store.duplicates() });
      this.builtIssuesVersion = this.issuesVersion;
      this.metrics.snapshots.inc();
      for (const t of XDS_TYPE_URLS) this.metrics.resources.set({ type: typeShortName(t) }, this.current.shared.get(t)?.size ?? 0);
      // The heap's size follows the config's: its growth is set for what it holds now.
      this.heap?.adjust();
      this.log.debug({ generation: this.builtGeneration }, 'snapshot rebuilt');
    } catch (err) {
      // Keep serving the previous snapshot: a translation bug must not blank every client's config.
      this.log.error({ err, generation: this.store.generation }, 'cannot translate the store; still serving the previous snapshot');
    }
  }

  /** A DestinationRule that applies to no Service is not dropped silently: a warning once, a gauge, /debug/config. */
  private reportDestinationRules(rules: DestinationRuleStatus[]): void {
    this.destinationRules = rules;
    const now = new Set<string>();
    for (const r of rules) {
      if (r.unmatched === undefined) continue;
      const key = `${r.key} ${r.unmatched}`;
      now.add(key);
      if (!this.unmatchedLogged.has(key)) {
        this.log.warn({ file: r.origin.file, line: r.origin.line, kind: 'DestinationRule', name: `${r.namespace}/${r.name}`, host: r.host }, `DestinationRule applies to nothing: ${r.unmatched}`);
      }
    }
    this.unmatchedLogged = now;
    this.metrics.destinationRules.set({ state: 'applied' }, rules.filter((r) => r.unmatched === undefined).length);
    this.metrics.destinationRules.set({ state: 'unmatched' }, now.size);
  }

  snapshot(): Snapshot {
    return this.current;
  }

  destinationRuleStatus(): DestinationRuleStatus[] {
    return this.destinationRules;
  }

  routeStatus(): RouteStatus[] {
    return this.routes;
  }

  ready(): boolean {
    return !this.closed && this.address !== '';
  }

  debugConfig(): unknown {
    // At scale the full document would be hundreds of megabytes: above DEBUG_DETAIL_LIMIT objects or
    // resources, only names, versions and sizes are listed.
    const total = XDS_TYPE_URLS.reduce((n, t) => n + (this.current.shared.get(t)?.size ?? 0), 0) + this.current.inbound.size;
    const detail = total <= DEBUG_DETAIL_LIMIT;
    const show = (r: XdsResource): Record<string, unknown> => ({ name: r.name, version: r.version, bytes: r.any.value.length, ...(detail ? { resource: toDebugJson(r.message) } : {}) });
    const resources: Record<string, unknown> = {};
    for (const t of XDS_TYPE_URLS) resources[typeShortName(t)] = [...(this.current.shared.get(t)?.values() ?? [])].map(show);
    const objects = [...this.store.all()];
    const objectDetail = objects.length <= DEBUG_DETAIL_LIMIT;
    return {
      controlPlane: this.id,
      generation: this.builtGeneration,
      objects: objects.map(([key, s]) => ({ key, origin: s.origin, ...(objectDetail ? { object: s.object } : {}) })),
      ...(detail && objectDetail ? {} : { detail: `objects and resources are shown in full up to ${DEBUG_DETAIL_LIMIT} of each; there are ${objects.length} objects and ${total} resources` }),
      issues: this.store.issues(),
      conflicts: this.conflicts.list(),
      routeStatus: this.routes,
      destinationRules: this.destinationRules,
      resources,
      inbound: Object.fromEntries([...this.current.inbound].map(([node, r]) => [node, show(r)])),
      streams: this.ads.describeStreams(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.sources) s.close();
    this.publisher?.close();
    this.statusWriter?.close();
    await this.ads.close();
    await this.ca?.close();
    await this.http?.close();
    await this.dashboard?.close();
    this.log.info('control plane stopped');
  }
}

/** Starts a control plane in this process. Rejects (and cleans up) if a source or a listener fails. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlaneHandle> {
  const log = opts.logger ?? createLogger({ level: opts.logLevel, name: 'controlplane' });
  const cp = new ControlPlane(opts, log);
  try {
    await cp.start();
  } catch (err) {
    await cp.close().catch(() => undefined);
    throw err;
  }
  return cp;
}
