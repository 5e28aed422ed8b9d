// LabKubeError: the failures of the lab's Kubernetes mode, each with a stable code and what to check.

import { NodemeshError } from '../../util/errors';

/** Stable codes; never renamed once shipped. */
export type LabKubeErrorCode =
  /** The cached kube-apiserver or etcd is missing. */
  | 'NM_LAB_KUBE_NO_APISERVER'
  /** The lab's own API server (or etcd) did not start or become ready. */
  | 'NM_LAB_KUBE_APISERVER'
  /** The kubeconfig given with --kubeconfig cannot be used. */
  | 'NM_LAB_KUBE_KUBECONFIG'
  /** A request to the API server failed or was refused. */
  | 'NM_LAB_KUBE_API'
  /** An object of the lab file was refused by the API server (file:line named). */
  | 'NM_LAB_KUBE_OBJECT'
  /** The lab file asks for something the Kubernetes mode cannot do (e.g. a pod IP outside its node's range). */
  | 'NM_LAB_KUBE_PLAN'
  /** A CNI plugin of a node's conflist failed for a pod. */
  | 'NM_LAB_KUBE_CNI'
  /** Something the lab waits for (a CRD, the root ConfigMap, nodemesh-cni in a conflist) did not happen in time. */
  | 'NM_LAB_KUBE_TIMEOUT'
  /** The lab's API proxy did not start. */
  | 'NM_LAB_KUBE_PROXY';

export class LabKubeError extends NodemeshError<LabKubeErrorCode> {
  constructor(code: LabKubeErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}
