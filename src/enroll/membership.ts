// Which pods are in the mesh: one rule for the agent deciding whom to enroll (agent/kube-enrollment.ts), the control
// plane telling other agents which endpoints speak HBONE (controlplane/membership.ts) and the lab. Not a host-network
// pod (it is the node itself), not annotated nodemesh.io/enroll=false, and either annotated nodemesh.io/enroll=true or
// in a namespace labelled nodemesh.io/mesh=enabled.

export const MESH_LABEL = 'nodemesh.io/mesh';
/** "false" keeps a pod out of the mesh (it still backs Services, in plaintext); "true" takes it in whatever its namespace says. */
export const ENROLL_ANNOTATION = 'nodemesh.io/enroll';

/** What the rule reads of a pod. */
export interface MembershipFacts {
  namespace: string;
  annotations: Record<string, string>;
  hostNetwork: boolean;
}

/** Whether the mesh takes this pod, and why not. `namespaceLabels` undefined: its Namespace is not known. */
export function wanted(pod: MembershipFacts, namespaceLabels: Record<string, string> | undefined): { wanted: boolean; reason: string } {
  if (pod.hostNetwork) return { wanted: false, reason: 'host-network pod' };
  const a = pod.annotations[ENROLL_ANNOTATION];
  if (a === 'false') return { wanted: false, reason: `opted out (${ENROLL_ANNOTATION}: "false")` };
  if (a === 'true') return { wanted: true, reason: `annotated ${ENROLL_ANNOTATION}: "true"` };
  if (namespaceLabels?.[MESH_LABEL] === 'enabled') return { wanted: true, reason: `namespace labelled ${MESH_LABEL}=enabled` };
  return { wanted: false, reason: `namespace ${pod.namespace} is not labelled ${MESH_LABEL}=enabled and the pod has no ${ENROLL_ANNOTATION} annotation` };
}

/**
 * The rule where config may name no Namespace (files; the lab without an API server): a namespace with no
 * Namespace object is in the mesh, so every pod is unless it opts out; one that has an object decides as above.
 */
export function wantedUnlessNamespaceSays(pod: MembershipFacts, namespaceLabels: Record<string, string> | undefined): boolean {
  return wanted(pod, namespaceLabels ?? { [MESH_LABEL]: 'enabled' }).wanted;
}
