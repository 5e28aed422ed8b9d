// The shape of one rendered Kubernetes object, and the labels every object nodemesh installs carries.

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** `nodemesh uninstall` and `kubectl delete -l` find what install created by these. */
export const PART_OF = 'app.kubernetes.io/part-of';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';

export function labels(component: string): Record<string, string> {
  return { [PART_OF]: 'nodemesh', 'app.kubernetes.io/component': component, [MANAGED_BY]: 'nodemesh-install' };
}
