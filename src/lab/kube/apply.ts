// Puts the lab's objects into the API server, in an order where each one's dependencies exist: nodemesh's own
// objects and the CRDs of the watched kinds (only where missing: a cluster's real definitions stay), then the lab
// file's Namespaces and CRDs, the namespaces and ServiceAccounts its pods name, then every other object of the file
// as written. An object the server refuses fails `lab up` with its file and line.
//
// Namespaces: those the lab creates for its pods are labelled nodemesh.io/mesh=enabled, so every pod is in the mesh
// unless it opts out, as in the file mode; an existing namespace gets the label too (and loses it at `lab down`);
// a Namespace object in the lab file is applied as written and decides for itself.

import { parseAllDocuments } from 'yaml';
import type { LabManifest, OtherObject, PodSpec } from '../manifest';
import { writeState } from '../state';
import { describeRef, refOf, statusMessage, type ObjectRef } from './api-client';
import { LabKubeError } from './errors';
import { FIELD_MANAGER, LAB_LABEL } from './kube-state';
import { createObject, kubeOf, recordCreated, type KubeletContext } from './kubelet';
import { MESH_LABEL } from '../../enroll/membership';
import { meshBootstrapObjects, namespaceObject, serviceAccountObject, watchedKindCrds, type Obj } from './objects';
import { sleep } from '../run';

/** The lab file's Pod documents as written, by namespace/name. */
export function rawPods(text: string): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as Obj | null;
    if (!o || o.kind !== 'Pod') continue;
    const m = (o.metadata ?? {}) as { name?: string; namespace?: string };
    out.set(`${m.namespace ?? 'default'}/${m.name}`, o);
  }
  return out;
}

function where(o: OtherObject): string {
  return `${o.loc.file}:${o.loc.line}`;
}

/** Waits until a CRD is Established and its kind is served. */
async function waitCrd(ctx: KubeletContext, crd: Obj, timeoutMs = 30_000): Promise<void> {
  const name = String((crd.metadata as Obj).name);
  const spec = crd.spec as { group: string; names: { kind: string }; versions: { name: string }[] };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await ctx.api.get<{ status?: { conditions?: { type: string; status: string }[] } }>({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
    const established = got?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    if (established && (await ctx.api.resourceOf(`${spec.group}/${spec.versions[0]!.name}`, spec.names.kind))) return;
    if (Date.now() > deadline) throw new LabKubeError('NM_LAB_KUBE_TIMEOUT', `the CRD ${name} was not established within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** nodemesh's namespace, ServiceAccounts, RBAC and CRD, and the watched kinds' CRDs: each only where missing. */
export async function applyBootstrap(ctx: KubeletContext): Promise<void> {
  const crds: Obj[] = [];
  for (const o of [...meshBootstrapObjects(), ...watchedKindCrds()]) {
    if (await ctx.api.get(refOf(o))) continue;
    await createObject(ctx, o);
    if (o.kind === 'CustomResourceDefinition') crds.push(o);
  }
  for (const c of crds) await waitCrd(ctx, c);
}

/**
 * A Service port without `protocol` is TCP, but server-side apply before Kubernetes 1.21 refuses one (the list's
 * merge key includes protocol and has no default then), so the lab writes the default out.
 */
export function defaultPortProtocols(obj: Obj): void {
  if (obj.kind !== 'Service' || typeof obj.spec !== 'object' || obj.spec === null) return;
  const ports = (obj.spec as Obj).ports;
  if (!Array.isArray(ports)) return;
  for (const p of ports as unknown[]) if (typeof p === 'object' && p !== null && (p as Obj).protocol === undefined) (p as Obj).protocol = 'TCP';
}

/** Applies one object of the lab file; a refusal names its file and line. */
async function applyOther(ctx: KubeletContext, o: OtherObject): Promise<void> {
  const obj = JSON.parse(JSON.stringify(o.object)) as Obj;
  const ref = refOf(obj);
  let namespaced: boolean;
  try {
    namespaced = await ctx.api.namespaced(ref);
  } catch (err) {
    throw new LabKubeError('NM_LAB_KUBE_OBJECT', `${where(o)}: ${(err as Error).message}`, { cause: err });
  }
  const meta = (obj.metadata ?? {}) as Obj;
  if (namespaced) meta.namespace = o.namespace;
  else delete meta.namespace;
  meta.labels = { ...((meta.labels ?? {}) as Record<string, string>), [LAB_LABEL]: ctx.state.lab };
  for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'managedFields']) delete meta[k];
  obj.metadata = meta;
  delete obj.status;
  defaultPortProtocols(obj);
  const stored: ObjectRef = { ...ref, namespace: namespaced ? o.namespace : undefined };
  const path = await ctx.api.pathOf(stored).catch((err: unknown) => {
    throw new LabKubeError('NM_LAB_KUBE_OBJECT', `${where(o)}: ${(err as Error).message}`, { cause: err });
  });
  const r = await ctx.api.request('PATCH', `${path}?fieldManager=${FIELD_MANAGER}&force=true`, obj, { contentType: 'application/apply-patch+yaml' });
  if (r.status < 200 || r.status > 299) {
    throw new LabKubeError('NM_LAB_KUBE_OBJECT', `${where(o)}: the API server refused ${describeRef(stored)}: ${statusMessage(r)}`, { hint: 'fix the object in the lab file' });
  }
  recordCreated(ctx.state, stored);
  if (obj.kind === 'CustomResourceDefinition') await waitCrd(ctx, obj);
}

/** Makes sure `ns` exists and is in the mesh: created labelled, or labelled (and remembered) when it exists. */
async function ensureMeshNamespace(ctx: KubeletContext, ns: string): Promise<void> {
  const ref: ObjectRef = { apiVersion: 'v1', kind: 'Namespace', name: ns };
  // A fresh API server creates "default" itself a moment after it is ready: a 409 here means it just did.
  let got = await ctx.api.get<{ metadata: { labels?: Record<string, string> } }>(ref);
  if (!got) {
    const r = await ctx.api.request('POST', '/api/v1/namespaces', namespaceObject(ctx.state.lab, ns, true));
    if (r.status >= 200 && r.status < 300) return recordCreated(ctx.state, ref);
    if (r.status !== 409) throw new LabKubeError('NM_LAB_KUBE_API', `creating namespace ${ns}: the API server answered ${r.status}: ${statusMessage(r)}`);
    got = await ctx.api.get(ref);
  }
  if (got?.metadata.labels?.[MESH_LABEL] === 'enabled') return;
  await ctx.api.must('PATCH', `/api/v1/namespaces/${ns}`, { metadata: { labels: { [MESH_LABEL]: 'enabled' } } }, { contentType: 'application/merge-patch+json', what: `labelling namespace ${ns}` });
  kubeOf(ctx.state).labelled.push(ns);
  writeState(ctx.state);
}

/** The namespaces and ServiceAccounts `pods` name (namespaces the lab file declares are left as applied). */
export async function ensurePodPrerequisites(ctx: KubeletContext, pods: PodSpec[], declared: Set<string>): Promise<void> {
  for (const ns of new Set(pods.map((p) => p.namespace))) if (!declared.has(ns)) await ensureMeshNamespace(ctx, ns);
  const accounts = new Set(pods.map((p) => `${p.namespace}/${p.serviceAccount}`));
  for (const key of accounts) {
    const [ns, name] = key.split('/') as [string, string];
    if (await ctx.api.get({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: ns, name })) continue;
    await createObject(ctx, serviceAccountObject(ctx.state.lab, ns, name));
  }
}

/** The lab file's own objects: Namespaces and CRDs first, then what needs them, in file order. */
export async function applyManifestObjects(ctx: KubeletContext, manifest: LabManifest): Promise<Set<string>> {
  const first = manifest.others.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
  for (const o of first) await applyOther(ctx, o);
  const declared = new Set(first.filter((o) => o.kind === 'Namespace').map((o) => o.name));
  await ensurePodPrerequisites(ctx, manifest.pods, declared);
  // Namespaced objects in a namespace no pod uses still need it.
  for (const o of manifest.others) {
    if (first.includes(o) || declared.has(o.namespace)) continue;
    if (!(await ctx.api.namespaced(refOf(o.object)).catch(() => false))) continue;
    if (!(await ctx.api.get({ apiVersion: 'v1', kind: 'Namespace', name: o.namespace }))) await ensureMeshNamespace(ctx, o.namespace);
  }
  for (const o of manifest.others) if (!first.includes(o)) await applyOther(ctx, o);
  return declared;
}

/** The labels of each namespace the pods use (what decides, with their annotations, whether the mesh takes them). */
export async function namespaceLabels(ctx: KubeletContext, namespaces: Iterable<string>): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  for (const ns of new Set(namespaces)) {
    const got = await ctx.api.get<{ metadata: { labels?: Record<string, string> } }>({ apiVersion: 'v1', kind: 'Namespace', name: ns });
    out.set(ns, got?.metadata.labels ?? {});
  }
  return out;
}
