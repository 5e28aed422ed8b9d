// The identity contract: SPIFFE IDs and the certificate bundles the proxy presents and verifies with.

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` */
export function spiffeId(id: WorkloadIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

const SPIFFE_RE = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

export function parseSpiffeId(uri: string): WorkloadIdentity | null {
  const m = SPIFFE_RE.exec(uri);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : null;
}

/** A workload's key and certificate chain, as PEM. */
export interface CertBundle {
  spiffeId: string;
  keyPem: string;
  /** Leaf first, then intermediates (not the root). */
  chainPem: string[];
  /** Trust anchors to verify peers with (the mesh root(s)). */
  rootsPem: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export type IdentityState = 'pending' | 'valid' | 'rotating' | 'failed';

export interface IdentityStatus {
  spiffeId: string;
  state: IdentityState;
  serial: string | null;
  notAfter: string | null;
  nextRotation: string | null;
  lastError: string | null;
  pods: number;
}

/** What the proxy reads: certificates to present and roots to verify peers with. */
export interface IdentitySource {
  /** The current bundle, waiting for the first issuance if needed; rejects with a clear error when it fails. */
  certFor(id: string): Promise<CertBundle>;
  /** The current bundle without waiting, or null. */
  current(id: string): CertBundle | null;
  /** Roots to verify peers with. */
  trustBundle(): string[];
}

/**
 * The identity subsystem. Implementations fetch certificates from the control plane's CA and rotate them;
 * callbacks are never invoked synchronously from the call that registers them.
 */
export interface IdentityProvider extends IdentitySource {
  /** Starts managing `id` for one more local pod (the first acquire fetches a certificate). */
  acquire(id: string): void;
  /** One pod fewer; the last release forgets the identity. */
  release(id: string): void;
  /** Called after every successful (re)issuance. */
  onRotate(cb: (id: string, bundle: CertBundle) => void): void;
  status(): IdentityStatus[];
  /** The control plane is reachable again: requests backing off after failures go out now, backoff reset. */
  retryNow(): void;
  /** Another agent owns the node's saved certificates from now on (this one handed over): stop writing them. */
  stopPersisting(): void;
  close(): void;
}
