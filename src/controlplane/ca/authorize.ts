// Node authorization: a node may hold an identity only while a pod with that namespace + service account is
// scheduled on it. A compromised agent can therefore mint only the identities of pods on its own node.

import * as grpc from '@grpc/grpc-js';
import type { WorkloadIdentity } from '../../identity/types';
import type { PodObject } from '../objects';
import { CaRefusal } from './errors';

/** Pods that entitle `node` to `identity`; finished pods (Succeeded/Failed) no longer do. */
export function entitlingPods(pods: Iterable<PodObject>, node: string, identity: WorkloadIdentity): PodObject[] {
  const out: PodObject[] = [];
  for (const p of pods) {
    if (p.nodeName !== node || p.meta.namespace !== identity.namespace || p.serviceAccount !== identity.serviceAccount) continue;
    if (p.phase === 'Succeeded' || p.phase === 'Failed') continue;
    out.push(p);
  }
  return out;
}

/**
 * Returns the entitling pods' names, or throws PERMISSION_DENIED saying what to check. The store may lag the
 * scheduler by a moment (a pod just bound to the node); agents retry with backoff, so a refusal then is transient.
 */
export function authorizeNode(pods: Iterable<PodObject>, node: string, identity: WorkloadIdentity, spiffeId: string): string[] {
  const all = [...pods];
  const ok = entitlingPods(all, node, identity);
  if (ok.length > 0) return ok.map((p) => `${p.meta.namespace}/${p.meta.name}`);
  const sameSa = all.filter((p) => p.meta.namespace === identity.namespace && p.serviceAccount === identity.serviceAccount);
  const base = `node ${node} asked for ${spiffeId} but no pod with that service account is scheduled on ${node}`;
  let detail: string;
  if (sameSa.length === 0) {
    detail = `no pod in namespace ${identity.namespace} uses service account ${identity.serviceAccount} (check the pod's namespace and spec.serviceAccountName)`;
  } else {
    const elsewhere = sameSa.filter((p) => p.nodeName !== node);
    const onNode = sameSa.filter((p) => p.nodeName === node);
    if (onNode.length > 0) {
      detail = `its pods on ${node} have finished (${onNode.map((p) => `${p.meta.name}: ${p.phase}`).join(', ')})`;
    } else {
      const nodes = [...new Set(elsewhere.map((p) => p.nodeName ?? '(unscheduled)'))].sort();
      detail = `pods with it are on ${nodes.join(', ')} (check the pod's spec.nodeName and which node's agent is asking)`;
    }
  }
  throw new CaRefusal(grpc.status.PERMISSION_DENIED, 'not_scheduled', `${base}: ${detail}`);
}
