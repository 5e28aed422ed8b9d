// Which pods are in the mesh as the agents decide it (enroll/membership.ts), for the model: other agents reach a pod
// in the mesh over HBONE and any other pod in plaintext, so the control plane must agree with the agent that
// enrolls it (or not). A pod of a namespace outside the mesh, called in the mesh here, had every mesh caller time
// out on its 15008.
//
// A namespace with no Namespace object in the store counts as in the mesh (wantedUnlessNamespaceSays): config files
// that name no Namespace keep every pod in the mesh unless it opts out, as the file-mode lab enrolls them. From the
// API server every namespace has its object; one created just now may be seen after its first pods, which are then
// in the mesh until it is.

import { wantedUnlessNamespaceSays } from '../enroll/membership';
import type { PodObject } from './objects';
import type { ObjectStore } from './store';

/** A pod's copy outside the mesh, one per pod object, so the model's caches see the same object while it stays out. */
const outside = new WeakMap<PodObject, PodObject>();

/**
 * The store's pods (oldest first), each with `inMesh` as its node's agent decides it. Validation set `inMesh` from
 * the pod alone (host network, opted out); its Namespace's labels decide the rest.
 */
export function meshPods(store: ObjectStore): PodObject[] {
  const pods = store.pods();
  const namespaces = store.list('Namespace');
  if (namespaces.length === 0) return pods;
  const labels = new Map(namespaces.map((s) => [s.object.meta.name, s.object.meta.labels]));
  return pods.map((p) => {
    const ns = labels.get(p.meta.namespace);
    if (!p.inMesh || ns === undefined) return p;
    if (wantedUnlessNamespaceSays({ namespace: p.meta.namespace, annotations: p.meta.annotations, hostNetwork: p.hostNetwork === true }, ns)) return p;
    let copy = outside.get(p);
    if (!copy) outside.set(p, (copy = { ...p, inMesh: false }));
    return copy;
  });
}
