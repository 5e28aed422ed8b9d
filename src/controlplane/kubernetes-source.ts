// Config source: list/watch of the Kubernetes API (in-cluster or kubeconfig); one store source per kind.

import type * as K8s from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger';
import { ControlPlaneError, CP_ERR } from './errors';
import type { ConfigSink, ConfigSource } from './file-source';
import type { Kind } from './objects';
import type { SourceDocument } from './store';
import { formatPath } from './checker';
import { validateDocument } from './validate';

/** What the control plane watches, with the API path each list/watch uses. */
export interface WatchedResource {
  kind: Kind;
  apiVersion: string;
  /** Empty for the core group. */
  group: string;
  version: string;
  plural: string;
  /** CRDs may be absent from a cluster; their failure is a warning, not fatal. */
  optional: boolean;
}

export const WATCHED_RESOURCES: WatchedResource[] = [
  { kind: 'Pod', apiVersion: 'v1', group: '', version: 'v1', plural: 'pods', optional: false },
  { kind: 'Service', apiVersion: 'v1', group: '', version: 'v1', plural: 'services', optional: false },
  // Their labels decide which pods are in the mesh (membership.ts), as on the agents.
  { kind: 'Namespace', apiVersion: 'v1', group: '', version: 'v1', plural: 'namespaces', optional: false },
  res('HTTPRoute', 'gateway.networking.k8s.io', 'v1', 'httproutes'),
  res('GRPCRoute', 'gateway.networking.k8s.io', 'v1', 'grpcroutes'),
  res('AuthorizationPolicy', 'security.istio.io', 'v1', 'authorizationpolicies'),
  res('PeerAuthentication', 'security.istio.io', 'v1', 'peerauthentications'),
  res('DestinationRule', 'networking.istio.io', 'v1', 'destinationrules'),
  res('FaultInjection', 'nodemesh.io', 'v1alpha1', 'faultinjections'),
];

function res(kind: Kind, group: string, version: string, plural: string): WatchedResource {
  return { kind, apiVersion: `${group}/${version}`, group, version, plural, optional: true };
}

export function apiPath(r: WatchedResource): string {
  return r.group ? `/apis/${r.group}/${r.version}/${r.plural}` : `/api/${r.version}/${r.plural}`;
}

/**
 * The slice of an informer the source needs (the shape of @kubernetes/client-node's `Informer & ObjectCache`).
 * Contract: callbacks fire after `start()`; `list()` is the informer's current cache.
 */
export interface ResourceInformer {
  on(event: 'add' | 'update' | 'delete', cb: (obj: unknown) => void): void;
  on(event: 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): unknown[];
}

export type InformerFactory = (resource: WatchedResource) => ResourceInformer;

/** Informers over the real API server: in-cluster service account when present, else the kubeconfig. */
export async function apiServerInformers(kubeconfig?: string): Promise<InformerFactory> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ControlPlaneError(CP_ERR.KUBERNETES, 'cannot load Kubernetes credentials', {
      hint: 'run in a pod with a service account, or set KUBECONFIG / --kubeconfig',
      cause: err,
    });
  }
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  return (r) => {
    const list = (): Promise<{ items: K8s.KubernetesObject[]; metadata?: K8s.V1ListMeta }> => {
      if (r.kind === 'Pod') return core.listPodForAllNamespaces();
      if (r.kind === 'Service') return core.listServiceForAllNamespaces();
      if (r.kind === 'Namespace') return core.listNamespace();
      return custom.listClusterCustomObject({ group: r.group, version: r.version, plural: r.plural }) as Promise<{
        items: K8s.KubernetesObject[];
      }>;
    };
    return k8s.makeInformer(kc, apiPath(r), list) as unknown as ResourceInformer;
  };
}

export interface KubernetesSourceOptions {
  resources?: WatchedResource[];
  debounceMs?: number;
  /** Delay before a failed list/watch is restarted (optional kinds wait 6x longer). Default 5 s. */
  retryMs?: number;
}

export class KubernetesSource implements ConfigSource {
  private readonly informers: { resource: WatchedResource; informer: ResourceInformer }[] = [];
  private readonly timers = new Map<Kind, NodeJS.Timeout>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly resources: WatchedResource[];
  private readonly debounceMs: number;
  private readonly retryMs: number;
  private closed = false;

  constructor(
    private readonly factory: InformerFactory,
    private readonly sink: ConfigSink,
    private readonly log: Logger,
    opts: KubernetesSourceOptions = {},
  ) {
    this.resources = opts.resources ?? WATCHED_RESOURCES;
    this.debounceMs = opts.debounceMs ?? 50;
    this.retryMs = opts.retryMs ?? 5000;
  }

  static sourceId(kind: Kind): string {
    return `kubernetes:${kind}`;
  }

  /**
   * Resolves once every required kind (Pod, Service) has been listed, so the first snapshot is complete rather than
   * empty; until then failures are logged and retried. Optional kinds (CRDs) never hold start up.
   */
  async start(): Promise<void> {
    await Promise.all(this.resources.map((r) => this.startOne(r)));
  }

  private startOne(resource: WatchedResource): Promise<void> {
    const informer = this.factory(resource);
    this.informers.push({ resource, informer });
    const changed = (): void => this.schedule(resource, informer);
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    let failedDuringStart = false;
    let synced = false;
    let onSynced: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (onSynced = resolve));
    const delay = resource.optional ? this.retryMs * 6 : this.retryMs;
    let attempts = 0;
    const attempt = async (): Promise<void> => {
      if (this.closed) return;
      failedDuringStart = false;
      // A restarted informer begins from a stopped state: without it, a client-node ListWatch whose previous
      // watch failed may neither list again nor report an error.
      if (attempts++ > 0) await informer.stop().catch(() => undefined);
      await informer.start();
      // client-node reports list failures through the error callback, not by rejecting start().
      if (failedDuringStart || this.closed) return;
      if (recovering) {
        // A watch opened while the API server was still starting may stay silent for good (seen with 1.20: the
        // list succeeded, the watch never delivered and never failed). One more restart once it has settled.
        recovering = false;
        this.log.info({ path: apiPath(resource) }, `kubernetes list/watch of ${resource.kind} is back; re-listing once more in ${delay * 2} ms`);
        retry(delay * 2);
      }
      if (!synced) {
        synced = true;
        this.log.info({ path: apiPath(resource), objects: informer.list().length }, `listed ${resource.kind}`);
      }
      this.deliver(resource, informer);
      onSynced();
    };
    // The informer does not restart itself after an error, and a restart whose list fails rejects instead of
    // reporting through the callback: either way, try again later (an API server away for a while comes back).
    let pending: NodeJS.Timeout | undefined;
    let recovering = false;
    const retry = (after = delay): void => {
      // One restart at a time: a failed attempt may both report an error and reject.
      if (this.closed || pending) return;
      const t = setTimeout(() => {
        this.retries.delete(t);
        pending = undefined;
        attempt().catch((e: unknown) => {
          this.log.warn({ err: (e as Error)?.message, path: apiPath(resource), retryInMs: delay }, `kubernetes list of ${resource.kind} failed; retrying`);
          retry();
        });
      }, after);
      pending = t;
      this.retries.add(t);
    };
    informer.on('error', (err?: unknown) => {
      failedDuringStart = true;
      if (this.closed) return;
      recovering = true;
      const hint = resource.optional ? '; is its CRD installed?' : '';
      this.log.warn({ err, path: apiPath(resource), retryInMs: delay }, `kubernetes list/watch of ${resource.kind} failed${hint}`);
      retry();
    });
    const first = attempt().catch((err: unknown) => {
      throw new ControlPlaneError(CP_ERR.KUBERNETES, `cannot list ${apiPath(resource)}`, {
        hint: 'check the API server address and that the service account may list and watch pods and services',
        cause: err,
      });
    });
    return resource.optional ? first.catch((err: unknown) => void this.log.warn({ err }, `ignoring ${resource.kind}`)) : first.then(() => ready);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    for (const t of this.retries) clearTimeout(t);
    for (const { informer } of this.informers) informer.stop().catch(() => undefined);
  }

  private schedule(resource: WatchedResource, informer: ResourceInformer): void {
    if (this.closed || this.timers.has(resource.kind)) return;
    this.timers.set(
      resource.kind,
      setTimeout(() => {
        this.timers.delete(resource.kind);
        this.deliver(resource, informer);
      }, this.debounceMs),
    );
  }

  /** Hands the informer's whole cache for one kind to the store (same path as a re-read file). */
  private deliver(resource: WatchedResource, informer: ResourceInformer): void {
    if (this.closed) return;
    const source = KubernetesSource.sourceId(resource.kind);
    const documents: SourceDocument[] = informer.list().map((item) => toDocument(source, resource, item));
    this.sink.apply({ source, documents });
  }
}

/** List items carry no kind/apiVersion; the object's "file" is its API path, its line 0. */
export function toDocument(source: string, resource: WatchedResource, item: unknown): SourceDocument {
  const raw = JSON.parse(JSON.stringify(item)) as Record<string, unknown>;
  raw.kind ??= resource.kind;
  raw.apiVersion ??= resource.apiVersion;
  const meta = (raw.metadata ?? {}) as { name?: string; namespace?: string; creationTimestamp?: unknown };
  const file = `${apiPath(resource)}/${meta.namespace ?? '-'}/${meta.name ?? '?'}`;
  const r = validateDocument(raw);
  if (r.status === 'ok') {
    // RFC 3339 (client-node's Dates became strings in the copy above); the age decides conflicts (store.ts compareAge)
    const created = typeof meta.creationTimestamp === 'string' ? Date.parse(meta.creationTimestamp) : NaN;
    return { status: 'ok', stored: { object: r.object, origin: { source, file, line: 0, ...(Number.isFinite(created) ? { created } : {}) }, raw } };
  }
  if (r.status === 'ignored') return { status: 'ignored', kind: r.kind, apiVersion: r.apiVersion, file, line: 0 };
  const key = r.name ? `${resource.kind}/${r.namespace ?? 'default'}/${r.name}` : undefined;
  return { status: 'invalid', key, issues: r.issues.map((i) => ({ file, line: 0, field: formatPath(i.path), message: i.message, kind: r.kind, name: r.name, key })) };
}
