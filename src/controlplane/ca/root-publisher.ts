// Publishes the mesh root certificate as a ConfigMap (`root-cert.pem`) in every namespace, as Istio does with
// istio-ca-root-cert: agents and workloads mount it to verify the control plane and peers. New namespaces get it
// as soon as the watch reports them; a ConfigMap edited or deleted by hand is put back at the next resync.
// Several replicas publishing the same root converge (a lost create race is a 409, a stale update a 409).

import type { Logger } from '../../telemetry/logger';

export const ROOT_CONFIGMAP_KEY = 'root-cert.pem';
export const PUBLISHER_LABEL = { 'app.kubernetes.io/managed-by': 'nodemesh-controlplane' };

export interface RootPublisherOptions {
  name: string;
  rootPem: () => string;
  kubeconfig?: string;
  log: Logger;
  /** Full pass over every namespace. Default 60 s. */
  resyncMs?: number;
}

export interface RootPublisher {
  /** Namespaces whose ConfigMap is current. */
  published(): number;
  close(): void;
}

export async function startRootPublisher(opts: RootPublisherOptions): Promise<RootPublisher> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const code = (err: unknown): number | undefined => (err as { code?: number }).code;
  const current = new Set<string>();
  let closed = false;

  const ensure = async (namespace: string): Promise<void> => {
    const want = opts.rootPem();
    let existing: { data?: Record<string, string>; metadata?: { resourceVersion?: string } } | null = null;
    try {
      existing = await core.readNamespacedConfigMap({ namespace, name: opts.name });
    } catch (err) {
      if (code(err) !== 404) throw err;
    }
    if (existing?.data?.[ROOT_CONFIGMAP_KEY] === want) {
      current.add(namespace);
      return;
    }
    const body = { metadata: { name: opts.name, namespace, labels: PUBLISHER_LABEL }, data: { [ROOT_CONFIGMAP_KEY]: want } };
    try {
      if (existing) await core.replaceNamespacedConfigMap({ namespace, name: opts.name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
      else await core.createNamespacedConfigMap({ namespace, body });
      current.add(namespace);
      opts.log.info({ namespace, configMap: opts.name }, existing ? 'mesh root updated' : 'mesh root published');
    } catch (err) {
      // 409: another replica got there first (the next pass checks its content); 403/404: the namespace is terminating.
      if (code(err) === 409) return;
      throw err;
    }
  };
  const ensureLogged = (namespace: string): void => {
    if (closed) return;
    ensure(namespace).catch((err: unknown) => {
      current.delete(namespace);
      opts.log.warn({ err: (err as Error).message, namespace }, 'cannot publish the mesh root; retrying at the next resync');
    });
  };

  const informer = k8s.makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace());
  const onNs = (ns: { metadata?: { name?: string; deletionTimestamp?: unknown } }): void => {
    if (ns.metadata?.name && !ns.metadata.deletionTimestamp) ensureLogged(ns.metadata.name);
  };
  informer.on('add', onNs);
  informer.on('update', onNs);
  informer.on('delete', (ns) => current.delete(ns.metadata?.name ?? ''));
  let restart: NodeJS.Timeout | undefined;
  const retry = (): void => {
    if (closed || restart) return;
    restart = setTimeout(() => {
      restart = undefined;
      // From a stopped state: a ListWatch whose watch failed may otherwise neither list again nor report.
      informer
        .stop()
        .catch(() => undefined)
        .then(() => informer.start())
        .catch(() => retry());
    }, 5000);
  };
  informer.on('error', (err: unknown) => {
    if (closed) return;
    opts.log.warn({ err: (err as Error)?.message }, 'namespace watch failed; restarting in 5 s');
    retry();
  });
  await informer.start();
  const resync = setInterval(() => {
    for (const ns of informer.list()) onNs(ns);
  }, opts.resyncMs ?? 60_000);
  resync.unref();
  return {
    published: () => current.size,
    close() {
      closed = true;
      clearInterval(resync);
      if (restart) clearTimeout(restart);
      informer.stop().catch(() => undefined);
    },
  };
}
