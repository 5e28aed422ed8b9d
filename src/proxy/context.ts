// What every proxy stage receives: logger, metrics, connection tracker, local workload state, tunables.

import type { IdentitySource } from '../identity/types';
import type { AuthzDecision, AuthzRequest } from '../state/authz';
import type { ServiceStore } from '../state/services';
import type { WorkloadStore } from '../state/workloads';
import type { Logger } from '../telemetry/logger';
import type { ProxyMetrics } from '../telemetry/metrics';
import type { ConnectionTracker, Endpoint } from './connection-tracker';
import type { HboneClientPool } from './hbone';
import type { HttpProxy } from './http/http-proxy';
import type { KeepaliveTiming } from './hbone/h2/session';
import type { HandshakeLimiter } from './hbone/handshake-limits';
import type { H2EngineName } from './hbone/h2-engine';

/** Per-pod socket source: the datapath in production, plain sockets in tests. */
export interface PodSockets {
  /** An unconnected TCP socket fd inside the pod netns, or null for a plain socket in the agent's netns. */
  newSocket(family: 4 | 6): Promise<number | null>;
  /** The original destination of a connection redirected to 15001, or null if none was recorded. */
  originalDst(peer: Endpoint, local: Endpoint): Endpoint | null;
  /**
   * A socket inside the pod netns bound to the client's address `from`, its flow to `to` exempt from inbound
   * steering until `connected()` (null: not for this family, or no datapath).
   */
  transparentSocket?(family: 4 | 6, from: string, to: Endpoint): Promise<{ fd: number; connected(): void }> | null;
}

/** Present when the agent has workload identities: mesh destinations are reached over HBONE (mTLS). */
export interface MeshContext {
  identity: IdentitySource;
  pool: HboneClientPool;
  /** PING liveness for the pod's HBONE servers (undefined: their default, null: off). */
  keepalive?: KeepaliveTiming | null;
  /** Bounds on TLS handshakes in progress on this thread's pods' 15008, and their timeout. */
  handshakes: { limiter: HandshakeLimiter; timeoutMs?: number };
  /** The HTTP/2 engine of the pod's HBONE servers (the pool has its own setting). Default ours. */
  h2?: H2EngineName;
  hbonePort: number;
  trustDomain: string;
  spiffeIdOf(w: { namespace: string; serviceAccount: string }): string;
}

export interface ProxyContext {
  log: Logger;
  metrics: ProxyMetrics;
  tracker: ConnectionTracker;
  workloads: WorkloadStore;
  services: ServiceStore;
  /** Per-direction relay buffer size in bytes. */
  bufferSize: number;
  connectTimeoutMs: number;
  mesh: MeshContext | null;
  /** Inbound authorization for the local pod with IP `podIp` (PeerAuthentication + AuthorizationPolicy). */
  authorize(podIp: string, req: AuthzRequest): AuthzDecision;
  /** Whether the local pod with IP `podIp` refuses plaintext (PeerAuthentication STRICT). */
  strictMtls(podIp: string): boolean;
  /** The L7 proxy for HTTP ports; null when L7 is off (every connection takes the L4 path). */
  http: HttpProxy | null;
}
