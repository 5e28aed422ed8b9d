// Which Istio security policies apply to each in-mesh pod: PeerAuthentication precedence and AuthorizationPolicy scope.

import {
  ROOT_NAMESPACE,
  type AuthorizationPolicyObject,
  type Kind,
  type PeerAuthenticationObject,
  type PodObject,
  type PolicyObject,
  type StoredObject,
} from './objects';

/** What the inbound side of one pod enforces. */
export interface WorkloadPolicy {
  mtlsMode: 'STRICT' | 'PERMISSIVE';
  /** `ns/name` of the PeerAuthentication that decided the mode; undefined when the default (PERMISSIVE) applies. */
  peerAuthentication?: string;
  /** Applicable DENY policies, sorted by namespace then name. */
  deny: AuthorizationPolicyObject[];
  /** Applicable ALLOW policies, sorted; empty means no ALLOW policy applies (so everything not denied is allowed). */
  allow: AuthorizationPolicyObject[];
}

export const DEFAULT_WORKLOAD_POLICY: WorkloadPolicy = { mtlsMode: 'PERMISSIVE', deny: [], allow: [] };

/** `ns.name`: how a policy is named in xDS, metrics and decisions. */
export function policyName(p: { meta: { namespace: string; name: string } }): string {
  return `${p.meta.namespace}.${p.meta.name}`;
}

/** The stored policy objects, for `buildModel` (takes anything with the store's `list`). */
export function policyObjects(store: { list(kind: Kind): StoredObject[] }): PolicyObject[] {
  return [...store.list('PeerAuthentication'), ...store.list('AuthorizationPolicy')].map((s) => s.object as PolicyObject);
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

function byName(a: PolicyObject, b: PolicyObject): number {
  return a.meta.namespace === b.meta.namespace ? a.meta.name.localeCompare(b.meta.name) : a.meta.namespace.localeCompare(b.meta.namespace);
}

/** Policies grouped by namespace, sorted, so each pod's lookup touches only two namespaces. */
export class PolicyIndex {
  private readonly peer = new Map<string, PeerAuthenticationObject[]>();
  private readonly authz = new Map<string, AuthorizationPolicyObject[]>();

  constructor(objects: PolicyObject[]) {
    for (const o of [...objects].sort(byName)) {
      const m: Map<string, PolicyObject[]> = o.kind === 'PeerAuthentication' ? this.peer : this.authz;
      const list = m.get(o.meta.namespace) ?? [];
      list.push(o);
      m.set(o.meta.namespace, list);
    }
  }

  get empty(): boolean {
    return this.peer.size === 0 && this.authz.size === 0;
  }

  /**
   * Istio precedence: a workload-selector policy in the pod's namespace, then the namespace-wide one, then the
   * mesh-wide one (root namespace, no selector); UNSET defers to the next level; the default is PERMISSIVE.
   * Istio takes the oldest policy when several compete at one level; files carry no creation time, so the first
   * by name wins here.
   */
  peerAuthenticationFor(pod: PodObject): { mode: 'STRICT' | 'PERMISSIVE'; policy?: string } {
    const own = this.peer.get(pod.meta.namespace) ?? [];
    const levels = [
      own.find((p) => p.selector !== undefined && selects(p.selector, pod.meta.labels)),
      own.find((p) => p.selector === undefined),
      (this.peer.get(ROOT_NAMESPACE) ?? []).find((p) => p.selector === undefined),
    ];
    for (const p of levels) {
      if (!p || p.mode === 'UNSET') continue;
      // DISABLE (plaintext only) is treated like PERMISSIVE for now: inbound still accepts both, and nodemesh
      // has no outbound switch for it yet.
      return { mode: p.mode === 'STRICT' ? 'STRICT' : 'PERMISSIVE', policy: `${p.meta.namespace}/${p.meta.name}` };
    }
    return { mode: 'PERMISSIVE' };
  }

  /** Policies of the root namespace (any pod whose labels match) and of the pod's own namespace. */
  authorizationFor(pod: PodObject): { deny: AuthorizationPolicyObject[]; allow: AuthorizationPolicyObject[] } {
    const candidates = [...(this.authz.get(ROOT_NAMESPACE) ?? [])];
    if (pod.meta.namespace !== ROOT_NAMESPACE) candidates.push(...(this.authz.get(pod.meta.namespace) ?? []));
    const deny: AuthorizationPolicyObject[] = [];
    const allow: AuthorizationPolicyObject[] = [];
    for (const p of candidates) {
      if (!selects(p.selector, pod.meta.labels)) continue;
      (p.action === 'DENY' ? deny : allow).push(p);
    }
    return { deny, allow };
  }

  workloadPolicy(pod: PodObject): WorkloadPolicy {
    if (this.empty) return DEFAULT_WORKLOAD_POLICY;
    const pa = this.peerAuthenticationFor(pod);
    return { mtlsMode: pa.mode, peerAuthentication: pa.policy, ...this.authorizationFor(pod) };
  }
}
