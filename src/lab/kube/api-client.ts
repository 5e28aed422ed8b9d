// The lab's client of the Kubernetes API: raw JSON over HTTPS with the credentials of a kubeconfig (token, client
// certificate or exec plugin, as @kubernetes/client-node reads them), API discovery for arbitrary kinds, server-side
// apply, deletes that tolerate absence, and TokenRequest. Objects stay plain JSON: nothing is reshaped on the way.

import https from 'node:https';
import { LabKubeError } from './errors';

export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

/** What names one object in the API. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  /** Absent for cluster-scoped kinds (and defaulted to "default" for namespaced ones). */
  namespace?: string;
}

export interface ApiResource {
  plural: string;
  namespaced: boolean;
}

/** The Kubernetes Status message of an error answer, or its first 300 characters. */
export function statusMessage(r: KubeResponse): string {
  const b = r.body as { message?: unknown } | undefined;
  return typeof b === 'object' && b !== null && typeof b.message === 'string' ? b.message : r.text.slice(0, 300);
}

export function refOf(o: Record<string, unknown>): ObjectRef {
  const meta = (o.metadata ?? {}) as { name?: string; namespace?: string };
  return { apiVersion: String(o.apiVersion ?? ''), kind: String(o.kind ?? ''), name: String(meta.name ?? ''), namespace: meta.namespace };
}

export function describeRef(r: ObjectRef): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

export class KubeApi {
  private readonly resources = new Map<string, Map<string, ApiResource>>();

  private constructor(
    /** The API server as this process dials it. */
    readonly server: string,
    private readonly authorize: (o: https.RequestOptions) => Promise<void>,
  ) {}

  /** A client with the credentials of `kubeconfig` (its current context). */
  static async load(kubeconfig: string): Promise<KubeApi> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromFile(kubeconfig);
    } catch (err) {
      throw new LabKubeError('NM_LAB_KUBE_KUBECONFIG', `cannot read the kubeconfig ${kubeconfig}: ${(err as Error).message}`, { hint: 'give a kubeconfig file with a current context' });
    }
    const server = kc.getCurrentCluster()?.server;
    if (!server || !server.startsWith('https://')) {
      throw new LabKubeError('NM_LAB_KUBE_KUBECONFIG', `the kubeconfig ${kubeconfig} has no https server in its current context (got ${JSON.stringify(server ?? null)})`, {
        hint: 'the lab dials the API server over TLS; check current-context and its cluster',
      });
    }
    return new KubeApi(server.replace(/\/+$/, ''), (o) => kc.applyToHTTPSOptions(o));
  }

  /** One request; JSON in and out. Never throws for an HTTP status, only when the server cannot be reached. */
  async request<T = unknown>(method: string, p: string, body?: unknown, o: { contentType?: string; timeoutMs?: number } = {}): Promise<KubeResponse<T>> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const opts: https.RequestOptions = {
      method,
      timeout: o.timeoutMs ?? 10_000,
      headers: {
        accept: 'application/json',
        ...(data === undefined ? {} : { 'content-type': o.contentType ?? 'application/json', 'content-length': Buffer.byteLength(data) }),
      },
    };
    await this.authorize(opts);
    return new Promise((resolve, reject) => {
      const req = https.request(`${this.server}${p}`, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (readyz): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out after ${o.timeoutMs ?? 10_000} ms`)));
      req.on('error', (err) => reject(new LabKubeError('NM_LAB_KUBE_API', `cannot reach the API server ${this.server}: ${err.message}`, { cause: err })));
      req.end(data);
    });
  }

  /** Like request, but a status outside 2xx is a LabKubeError with the server's message. */
  async must<T = unknown>(method: string, p: string, body?: unknown, o: { contentType?: string; timeoutMs?: number; what?: string } = {}): Promise<T> {
    const r = await this.request<T>(method, p, body, o);
    if (r.status < 200 || r.status > 299) {
      throw new LabKubeError('NM_LAB_KUBE_API', `${o.what ?? `${method} ${p}`}: the API server answered ${r.status}: ${statusMessage(r)}`);
    }
    return r.body;
  }

  /** The resource serving `kind` in `apiVersion`, from discovery (cached; asked again on a miss: CRDs come and go). */
  async resourceOf(apiVersion: string, kind: string): Promise<ApiResource | null> {
    const hit = this.resources.get(apiVersion)?.get(kind);
    if (hit) return hit;
    const r = await this.request<{ resources?: { name: string; kind: string; namespaced: boolean }[] }>('GET', apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new LabKubeError('NM_LAB_KUBE_API', `discovery of ${apiVersion}: the API server answered ${r.status}: ${statusMessage(r)}`);
    const m = new Map<string, ApiResource>();
    for (const x of r.body.resources ?? []) if (!x.name.includes('/')) m.set(x.kind, { plural: x.name, namespaced: x.namespaced });
    this.resources.set(apiVersion, m);
    return m.get(kind) ?? null;
  }

  /** /api/v1/namespaces/NS/pods/NAME, /apis/G/V/PLURAL/NAME, ...; `sub` appends a subresource (status, token). */
  async pathOf(ref: ObjectRef, sub?: string): Promise<string> {
    const res = await this.resourceOf(ref.apiVersion, ref.kind);
    if (!res) {
      throw new LabKubeError('NM_LAB_KUBE_API', `the API server does not serve ${ref.kind} in ${ref.apiVersion}`, {
        hint: 'check apiVersion and kind; a custom resource needs its CRD installed',
      });
    }
    const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
    const ns = res.namespaced ? `/namespaces/${encodeURIComponent(ref.namespace ?? 'default')}` : '';
    return `${base}${ns}/${res.plural}/${encodeURIComponent(ref.name)}${sub ? `/${sub}` : ''}`;
  }

  async namespaced(ref: Pick<ObjectRef, 'apiVersion' | 'kind'>): Promise<boolean> {
    return (await this.resourceOf(ref.apiVersion, ref.kind))?.namespaced ?? true;
  }

  /** Server-side apply (create or update; the fields this manager set are its own). Returns what the server stored. */
  async apply<T = Record<string, unknown>>(obj: Record<string, unknown>, fieldManager: string): Promise<T> {
    const ref = refOf(obj);
    const r = await this.request<T>('PATCH', `${await this.pathOf(ref)}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`, obj, { contentType: 'application/apply-patch+yaml' });
    if (r.status < 200 || r.status > 299) {
      throw new LabKubeError('NM_LAB_KUBE_API', `applying ${describeRef(ref)}: the API server answered ${r.status}: ${statusMessage(r)}`);
    }
    return r.body;
  }

  /** The object, or null when it does not exist. */
  async get<T = Record<string, unknown>>(ref: ObjectRef): Promise<T | null> {
    const r = await this.request<T>('GET', await this.pathOf(ref));
    if (r.status === 404) return null;
    if (r.status !== 200) throw new LabKubeError('NM_LAB_KUBE_API', `reading ${describeRef(ref)}: the API server answered ${r.status}: ${statusMessage(r)}`);
    return r.body;
  }

  /** Deletes at once (grace 0, dependants in the background); true if it existed. */
  async remove(ref: ObjectRef): Promise<boolean> {
    const r = await this.request('DELETE', `${await this.pathOf(ref)}?gracePeriodSeconds=0&propagationPolicy=Background`);
    if (r.status === 404) return false;
    if (r.status < 200 || r.status > 299) throw new LabKubeError('NM_LAB_KUBE_API', `deleting ${describeRef(ref)}: the API server answered ${r.status}: ${statusMessage(r)}`);
    return true;
  }

  /** A merge patch of a subresource (pods/status, nodes/status). */
  async patchSubresource(ref: ObjectRef, sub: string, patch: unknown): Promise<void> {
    await this.must('PATCH', await this.pathOf(ref, sub), patch, { contentType: 'application/merge-patch+json', what: `writing ${sub} of ${describeRef(ref)}` });
  }

  /**
   * A projected ServiceAccount token (TokenRequest), as the kubelet mints for a pod's projected volume: for
   * `audiences` (none: the API server's own), bound to `pod` when given.
   */
  async mintToken(namespace: string, serviceAccount: string, o: { audiences?: string[]; pod?: { name: string; uid: string }; expirationSeconds?: number } = {}): Promise<string> {
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: o.audiences ?? [],
        expirationSeconds: o.expirationSeconds ?? 86_400,
        boundObjectRef: o.pod ? { kind: 'Pod', apiVersion: 'v1', name: o.pod.name, uid: o.pod.uid } : undefined,
      },
    };
    const r = await this.must<{ status: { token: string } }>('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`, body, {
      what: `minting a token for ServiceAccount ${namespace}/${serviceAccount}`,
    });
    return r.status.token;
  }
}
