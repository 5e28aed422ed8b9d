// The agent's view of the Kubernetes API: the pods scheduled on its node and the namespaces' labels (list/watch),
// from which the agent decides which of those pods the mesh takes (enroll/membership.ts).
// The caches survive an API outage: until a watch is re-established the last listed state stands.

import type * as K8s from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger';

export interface PodInfo {
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ips: string[];
  hostNetwork: boolean;
  deleting: boolean;
  phase: string;
}

export function podInfo(p: K8s.V1Pod): PodInfo {
  const ips = (p.status?.podIPs ?? []).map((x) => x.ip).filter((x): x is string => !!x);
  if (ips.length === 0 && p.status?.podIP) ips.push(p.status.podIP);
  return {
    uid: p.metadata?.uid ?? '',
    name: p.metadata?.name ?? '',
    namespace: p.metadata?.namespace ?? 'default',
    serviceAccount: p.spec?.serviceAccountName ?? 'default',
    labels: p.metadata?.labels ?? {},
    annotations: p.metadata?.annotations ?? {},
    ips,
    hostNetwork: p.spec?.hostNetwork === true,
    deleting: !!p.metadata?.deletionTimestamp,
    phase: p.status?.phase ?? 'Pending',
  };
}

export class KubePodWatch {
  private synced = false;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private constructor(
    private readonly pods: K8s.Informer<K8s.V1Pod> & K8s.ObjectCache<K8s.V1Pod>,
    private readonly namespaces: K8s.Informer<K8s.V1Namespace> & K8s.ObjectCache<K8s.V1Namespace>,
    private readonly core: K8s.CoreV1Api,
    private readonly log: Logger,
  ) {}

  static async start(opts: { node: string; kubeconfig?: string; log: Logger; onChange: () => void; retryMs?: number }): Promise<KubePodWatch> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const fieldSelector = `spec.nodeName=${opts.node}`;
    const pods = new k8s.ListWatch<K8s.V1Pod>('/api/v1/pods', new k8s.Watch(kc), () => core.listPodForAllNamespaces({ fieldSelector }), false, undefined, fieldSelector);
    const namespaces = k8s.makeInformer<K8s.V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace());
    const w = new KubePodWatch(pods, namespaces, core, opts.log);
    const connected = new Set<unknown>();
    const first: Promise<void>[] = [];
    for (const inf of [pods, namespaces] as (K8s.Informer<K8s.KubernetesObject> & K8s.ObjectCache<K8s.KubernetesObject>)[]) {
      for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, () => opts.onChange());
      // Emitted once a list succeeded and its watch runs: only then is the cache a view of the node.
      inf.on('connect', () => {
        connected.add(inf);
        if (connected.size === 2) w.synced = true;
        opts.onChange();
      });
      let pending = false;
      let failures = 0;
      const retry = (after = opts.retryMs ?? 5000): void => {
        if (w.closed || pending) return;
        pending = true;
        const t = setTimeout(() => {
          w.timers.delete(t);
          pending = false;
          // From a stopped state: a ListWatch whose watch failed may otherwise neither list again nor report.
          const before = failures;
          inf
            .stop()
            .catch(() => undefined)
            .then(() => inf.start())
            .then(() => {
              // Back: a watch opened while the API server was still starting may stay silent; re-list once more.
              if (failures === before && before > 0) {
                failures = 0;
                retry((opts.retryMs ?? 5000) * 2);
              }
            })
            .catch(() => retry());
        }, after);
        w.timers.add(t);
      };
      inf.on('error', (err: unknown) => {
        if (w.closed) return;
        opts.log.warn({ err: (err as Error)?.message }, `Kubernetes watch failed; keeping the last known pods, retrying in ${opts.retryMs ?? 5000} ms`);
        failures++;
        retry();
      });
      // An API server that is away when the agent starts does not stop the agent: it serves pods it knows
      // (pods.json, CNI with direct lookups) and lists once the API answers.
      first.push(
        inf.start().catch((err: unknown) => {
          opts.log.warn({ err: (err as Error)?.message }, `cannot list from the Kubernetes API yet; retrying in ${opts.retryMs ?? 5000} ms`);
          failures++;
          retry();
        }),
      );
    }
    await Promise.all(first);
    return w;
  }

  /** False until both lists have succeeded once; reconcile never unenrolls on a view it has not had. */
  get ready(): boolean {
    return this.synced;
  }

  list(): PodInfo[] {
    return this.pods.list().map(podInfo);
  }

  namespaceLabels(ns: string): Record<string, string> | undefined {
    return this.namespaces.get(ns)?.metadata?.labels;
  }

  /** From the cache, else straight from the API (a CNI ADD may come before the watch reports the pod). */
  async find(namespace: string, name: string): Promise<PodInfo | null> {
    const hit = this.pods.get(name, namespace);
    if (hit) return podInfo(hit);
    try {
      return podInfo(await this.core.readNamespacedPod({ namespace, name }));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw err;
    }
  }

  async namespaceLabelsFresh(ns: string): Promise<Record<string, string> | undefined> {
    const hit = this.namespaceLabels(ns);
    if (hit) return hit;
    try {
      return (await this.core.readNamespace({ name: ns })).metadata?.labels ?? {};
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.pods.stop().catch(() => undefined);
    this.namespaces.stop().catch(() => undefined);
    this.log.debug('Kubernetes watch stopped');
  }
}
