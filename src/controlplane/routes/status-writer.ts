// Writes route status back to the Kubernetes API: status.parents[] entries nodemesh owns (its controllerName),
// leaving other controllers' entries (a gateway's, for Gateway parents) as they are.
//
// Only what changed is written: the last status written per route is remembered, and a route is fetched and
// replaced (status subresource, with its resourceVersion) only when its computed status differs. One write at
// a time; a failed or conflicting write is retried after a delay, with the newest status.

import type { Logger } from '../../telemetry/logger';
import { ControlPlaneError, CP_ERR } from '../errors';
import { GATEWAY_GROUP, type ParentRef, type RouteKind } from './route-objects';
import { invalidCondition, ROUTE_CONTROLLER, type RouteCondition, type RouteParentStatus, type RouteStatus } from './route-status';

/** A route as the API server returns it (the fields the writer reads and writes). */
export interface ApiRoute {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; generation?: number; resourceVersion?: string };
  spec?: { parentRefs?: Partial<ParentRef>[] };
  status?: { parents?: ApiParentStatus[] };
}

export interface ApiParentStatus {
  parentRef: Partial<ParentRef>;
  controllerName: string;
  conditions: (RouteCondition & { lastTransitionTime?: string })[];
}

/** The two calls the writer makes; `replaceStatus` rejects with `{ code: 409 }` (or statusCode) on a conflict. */
export interface RouteStatusApi {
  get(kind: RouteKind, namespace: string, name: string): Promise<ApiRoute | null>;
  replaceStatus(kind: RouteKind, namespace: string, name: string, body: ApiRoute): Promise<void>;
}

const PLURAL: Record<RouteKind, string> = { HTTPRoute: 'httproutes', GRPCRoute: 'grpcroutes' };

/** The API server's routes through @kubernetes/client-node (in-cluster credentials, or the kubeconfig). */
export async function apiServerRouteStatus(kubeconfig?: string): Promise<RouteStatusApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ControlPlaneError(CP_ERR.KUBERNETES, 'cannot load Kubernetes credentials for route status', { hint: 'run in a pod with a service account, or set --kubeconfig', cause: err });
  }
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const ref = (kind: RouteKind, namespace: string, name: string) => ({ group: GATEWAY_GROUP, version: 'v1', plural: PLURAL[kind], namespace, name });
  return {
    async get(kind, namespace, name) {
      try {
        return (await api.getNamespacedCustomObject(ref(kind, namespace, name))) as ApiRoute;
      } catch (err) {
        if (statusCode(err) === 404) return null;
        throw err;
      }
    },
    async replaceStatus(kind, namespace, name, body) {
      await api.replaceNamespacedCustomObjectStatus({ ...ref(kind, namespace, name), body });
    },
  };
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  const c = e?.code ?? e?.statusCode ?? e?.response?.statusCode;
  return typeof c === 'number' ? c : undefined;
}

function sameRef(a: Partial<ParentRef>, b: ParentRef): boolean {
  return (a.group ?? GATEWAY_GROUP) === b.group && (a.kind ?? 'Gateway') === b.kind && (a.namespace ?? b.namespace) === b.namespace && a.name === b.name && a.port === b.port && a.sectionName === b.sectionName;
}

export interface RouteStatusWriterOptions {
  /** Which computed statuses belong to the API (routes from the Kubernetes source). */
  fromApi: (s: RouteStatus) => boolean;
  retryMs?: number;
  now?: () => Date;
}

export class RouteStatusWriter {
  /** What was last written (or found already written) per key, without timestamps. */
  private readonly written = new Map<string, string>();
  private readonly pending = new Map<string, RouteStatus>();
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly api: RouteStatusApi,
    private readonly log: Logger,
    private readonly opts: RouteStatusWriterOptions,
  ) {}

  /** The current statuses of every route (after each rebuild). Returns at once; writes happen in the background. */
  update(statuses: RouteStatus[]): void {
    if (this.closed) return;
    const present = new Set<string>();
    for (const s of statuses) {
      if (!this.opts.fromApi(s)) continue;
      present.add(s.key);
      if (this.written.get(s.key) !== fingerprint(s)) this.pending.set(s.key, s);
    }
    // A deleted route has no status to keep.
    for (const key of [...this.written.keys()]) if (!present.has(key)) this.written.delete(key);
    this.kick();
  }

  /** Resolves once nothing is pending (tests). */
  async idle(): Promise<void> {
    while (this.running || (this.pending.size > 0 && !this.timer)) await new Promise((r) => setTimeout(r, 5));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.pending.clear();
  }

  private kick(): void {
    if (this.running || this.timer || this.pending.size === 0 || this.closed) return;
    this.running = true;
    void this.drain().finally(() => {
      this.running = false;
      if (this.pending.size > 0 && !this.closed && !this.timer) {
        // What failed waits; what arrived meanwhile goes with it.
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick();
        }, this.opts.retryMs ?? 5000);
      }
    });
  }

  private async drain(): Promise<void> {
    const failed = new Map<string, RouteStatus>();
    while (this.pending.size > 0 && !this.closed) {
      const [key, s] = this.pending.entries().next().value as [string, RouteStatus];
      this.pending.delete(key);
      try {
        if (await this.write(s)) this.written.set(key, fingerprint(s));
      } catch (err) {
        const conflict = statusCode(err) === 409;
        this.log[conflict ? 'debug' : 'warn']({ err, route: key }, conflict ? 'route status write conflicted; retrying' : 'cannot write route status; retrying');
        failed.set(key, s);
      }
    }
    for (const [k, s] of failed) if (!this.pending.has(k)) this.pending.set(k, s);
  }

  /** Fetches the route and replaces nodemesh's parent entries; false when there was nothing to write it to. */
  private async write(s: RouteStatus): Promise<boolean> {
    const obj = await this.api.get(s.kind, s.namespace, s.name);
    if (!obj) return true;
    const generation = obj.metadata.generation;
    // A newer version than the one computed is on its way through the informer: its status will follow.
    if (!s.invalid && s.generation !== undefined && generation !== undefined && generation > s.generation) return false;
    const desired = desiredParents(s, obj, generation);
    const now = (this.opts.now ?? (() => new Date()))().toISOString();
    const old = (obj.status?.parents ?? []).filter((p) => p.controllerName === ROUTE_CONTROLLER);
    const ours: ApiParentStatus[] = desired.map((p) => {
      const prev = old.find((o) => sameRef(o.parentRef, p.parentRef));
      return {
        parentRef: p.parentRef,
        controllerName: p.controllerName,
        conditions: p.conditions.map((c) => {
          const before = prev?.conditions.find((x) => x.type === c.type);
          // lastTransitionTime moves only when the condition's status does.
          return { ...c, lastTransitionTime: before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now };
        }),
      };
    });
    if (JSON.stringify(stripTimes(old)) === JSON.stringify(stripTimes(ours))) return true;
    const others = (obj.status?.parents ?? []).filter((p) => p.controllerName !== ROUTE_CONTROLLER);
    await this.api.replaceStatus(s.kind, s.namespace, s.name, {
      apiVersion: obj.apiVersion ?? `${GATEWAY_GROUP}/v1`,
      kind: obj.kind ?? s.kind,
      metadata: { name: s.name, namespace: s.namespace, resourceVersion: obj.metadata.resourceVersion },
      status: { parents: [...others, ...ours] },
    });
    this.log.debug({ route: s.key, parents: ours.length }, 'route status written');
    return true;
  }
}

/**
 * Our entries: the computed ones, or, for a route with no valid version at all, one per Service parentRef the
 * API object names, each Accepted=False with the validation issues.
 */
function desiredParents(s: RouteStatus, obj: ApiRoute, generation: number | undefined): RouteParentStatus[] {
  const withGeneration = (c: RouteCondition): RouteCondition => (generation === undefined ? c : { ...c, observedGeneration: generation });
  if (s.parents.length > 0 || !s.invalid) return s.parents.map((p) => ({ ...p, conditions: p.conditions.map(withGeneration) }));
  return (obj.spec?.parentRefs ?? [])
    .filter((r) => (r.group ?? GATEWAY_GROUP) === '' && r.kind === 'Service' && typeof r.name === 'string')
    .map((r) => ({
      parentRef: { group: '', kind: 'Service', namespace: r.namespace ?? s.namespace, name: r.name!, ...(r.port !== undefined ? { port: r.port } : {}), ...(r.sectionName !== undefined ? { sectionName: r.sectionName } : {}) },
      controllerName: ROUTE_CONTROLLER,
      conditions: [invalidCondition(s.invalid!, false, generation)],
    }));
}

function stripTimes(ps: ApiParentStatus[]): unknown {
  return ps.map((p) => ({ ...p, conditions: p.conditions.map(({ lastTransitionTime: _t, ...c }) => c) }));
}

function fingerprint(s: RouteStatus): string {
  return JSON.stringify([s.generation, s.invalid, s.parents]);
}
