// What an agent is started with (`nodemesh agent` flags, tests' in-process agents) and the roles it goes through.

import type { CniLifecycleOptions } from './cni-lifecycle';
import type { IdentityProvider } from '../identity/types';
import type { KeepaliveTiming } from '../proxy/hbone/h2/session';
import type { HandshakeOptions } from '../proxy/hbone/handshake-limits';
import type { L7Options } from '../proxy/runtime';
import type { H2EngineName } from '../proxy/hbone/h2-engine';
import type { TracingOptions } from '../telemetry/tracing/tracing-config';
import type { XdsMode } from '../xds/ads-client';
import type { Registry } from 'prom-client';

export interface AgentOptions {
  node: string;
  stateDir: string;
  pinRoot: string;
  cgroupRoot: string;
  /** TCP ports in the agent's netns on `adminHost`; 0 disables one. */
  adminPort: number;
  metricsPort: number;
  readyPort: number;
  adminHost: string;
  /** Address of the metrics and readiness ports (the node's address in Kubernetes); default `adminHost`. */
  probeHost?: string;
  drainMs: number;
  /** After handing over to a successor, how long open connections may go on (default 1 h). */
  handoverDrainMs?: number;
  /** flock for STATE_DIR/agents.lock (the addon); absent: no lock (tests with a fake datapath). */
  lock?: { flock(fd: number, exclusive: boolean): boolean };
  bufferSize?: number;
  connectTimeoutMs?: number;
  /**
   * Threads that serve pod traffic, the main thread included (default 1). Each serves copies of every pod's
   * listener fds, so connections spread over that many cores; needs the kernel datapath.
   */
  dataThreads?: number;
  /** A worker thread whose event loop has not run for this long is terminated and restarted (default 10 s; 0: never). */
  workerStallTimeoutMs?: number;
  /** L7 for HTTP ports (default on), and which requests get an access line (default all). */
  l7?: L7Options;
  /** After a burst of connections to pods' 15008, and after a large xDS change: memory back to the kernel (the addon's relieveMemory; tests: absent). */
  relieveMemory?: () => void;
  /** `process_*` and `nodejs_*` metrics, every thread's (the CLI turns them on; in-process tests leave them off). */
  defaultMetrics?: boolean;
  /** Spans of sampled and failed requests, exported over OTLP (absent: no tracing). */
  tracing?: TracingOptions;
  /** Stream reports and tapped requests to the control plane at this address (its xDS address); absent: none. */
  telemetry?: { address: string; intervalMs?: number };
  /**
   * Pods from the Kubernetes API: the CNI plugin's events are resolved there, and the agent reconciles the pods
   * of its node (enrolling those that ran before it, found in `procRoot`). `cni` installs nodemesh-cni on the node.
   */
  kubernetes?: { kubeconfig?: string; procRoot: string; cni?: CniLifecycleOptions };
  /** Control plane ADS address (`host:port` or `unix:///path`); absent: no services, passthrough only. */
  xds?: { address: string; mode: XdsMode; maxMessageBytes?: number; tls?: { rootFile: string; tokenFile?: string; serverName?: string } };
  /**
   * Workload identities from the control plane's CA: with them, traffic between mesh pods goes over HBONE
   * (mTLS). Absent: plaintext everywhere.
   */
  mesh?: {
    identity: (registry: Registry) => IdentityProvider;
    trustDomain: string;
    /** HBONE PING liveness, both as client and as server (see HboneClientPoolOptions.keepalive); null: off. Default 10 s + 10 s. */
    keepalive?: KeepaliveTiming | null;
    /** Bounds on TLS handshakes in progress on pods' 15008 (per thread), and their timeout. */
    handshakes?: HandshakeOptions;
    /** HTTP/2 engine for HBONE, client and server (see proxy/hbone/h2-engine.ts). Default `nodemesh`. */
    h2?: H2EngineName;
  };
}

/**
 * starting: no other agent answered (first start, or after a crash/stop); taking-over: a running agent agreed to
 * hand over and serves until this one is ready; active: the node's agent; handing-over: a successor is getting
 * ready (enrollment calls are forwarded to it); draining: handed over, serving open connections until they end;
 * stopping: SIGTERM without a successor.
 */
export type AgentRole = 'starting' | 'taking-over' | 'active' | 'handing-over' | 'draining' | 'stopping';

export const DEFAULT_HANDOVER_DRAIN_MS = 3600_000;
