// Messages between the agent's main thread and its data-plane worker threads, and the conversion of xDS
// state to a form that crosses threads (compiled policy matchers are closures: they are rebuilt on arrival).

import type { ClusterReport } from '../proxy/http/cluster-report';
import type { DatapathWorkerShare, PodWorkerShare } from '../datapath/types';
import type { CertBundle } from '../identity/types';
import type { ConnectionTracker } from '../proxy/connection-tracker';
import type { HboneClientPoolStats } from '../proxy/hbone';
import type { KeepaliveTiming } from '../proxy/hbone/h2/session';
import type { HandshakeOptions } from '../proxy/hbone/handshake-limits';
import type { L7Options } from '../proxy/runtime';
import type { H2EngineName } from '../proxy/hbone/h2-engine';
import type { PodHboneServers } from '../proxy/runtime';
import { compilePolicy, type CompiledPolicy, type InboundPolicy, type PolicyView, type RuleSpec } from '../state/authz';
import type { Workload } from '../state/workloads';
import type { AgentResource } from '../xds/agent-resources';
import { closeFdQuietly } from '../util/fd';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { TapEvent, TapFilter } from '../telemetry/tap/tap-filter';
import type { SpanRecord } from '../telemetry/tracing/span';
import type { TracingOptions } from '../telemetry/tracing/tracing-config';

export interface WorkerData {
  index: number;
  logLevel: string;
  bufferSize?: number;
  connectTimeoutMs?: number;
  datapath: DatapathWorkerShare;
  mesh: { trustDomain: string; keepalive?: KeepaliveTiming | null; handshakes?: HandshakeOptions; h2?: H2EngineName } | null;
  l7?: L7Options;
  node?: string;
  /** Collect this thread's `nodejs_*` metrics. */
  defaultMetrics?: boolean;
  /** Sampling for this thread's tracer; its spans go to the main thread (`spans`), which exports them. */
  tracing?: TracingOptions;
  /** One Int32 the worker's event loop increments every HEARTBEAT_MS: the main thread's watchdog reads it. */
  heartbeat: SharedArrayBuffer;
}

export const HEARTBEAT_MS = 250;

interface WirePolicy {
  name: string;
  rules: RuleSpec[];
}

interface WireView {
  deny: WirePolicy[];
  allow: WirePolicy[] | null;
}

interface WireInboundPolicy extends WireView {
  mtlsMode: InboundPolicy['mtlsMode'];
  http?: WireView;
}

export type WireResource = Exclude<AgentResource, { kind: 'inbound' }> | (Omit<Extract<AgentResource, { kind: 'inbound' }>, 'policies'> & { policies: Map<string, WireInboundPolicy> });

export type ToWorker =
  | { type: 'pod-add'; pod: Workload; share: PodWorkerShare }
  | { type: 'pod-remove'; uid: string }
  | { type: 'xds'; typeUrl: string; resources: WireResource[] }
  | { type: 'identity'; id: string; bundle: CertBundle; roots: string[] }
  | { type: 'identity-failed'; id: string; message: string }
  | { type: 'identity-forget'; id: string }
  | { type: 'log-level'; level: string }
  /** The live-tap filters subscribed now (empty: tap off). */
  | { type: 'tap'; filters: TapFilter[] }
  /** Shutdown or handover: stop accepting on every pod (15008 too unless keepHbone); the drain call follows. */
  | { type: 'stop'; keepHbone?: boolean }
  /** `reportOnly`: of the metrics, only the series a mesh report reads (REPORT_METRICS), every report interval. */
  | { type: 'call'; seq: number; method: 'stats'; reportOnly?: boolean }
  | { type: 'call'; seq: number; method: 'drain'; deadlineMs: number; keepHbone?: boolean };

export type FromWorker =
  | { type: 'ready' }
  /** The worker received a pod-add: the share's fds are its own from now on. */
  | { type: 'pod-taken'; uid: string }
  | { type: 'pod-failed'; uid: string; message: string }
  | { type: 'reply'; seq: number; value?: unknown; error?: string }
  /** Finished spans for the main thread's exporter. */
  | { type: 'spans'; spans: SpanRecord[] }
  /** Tapped requests, and how many this thread dropped over its rate cap. */
  | { type: 'tap-events'; events: TapEvent[]; dropped: number };

export interface WorkerStats {
  index: number;
  metrics: MetricObjectWithValues<MetricValue<string>>[];
  connections: ReturnType<ConnectionTracker['snapshot']>;
  hboneClient: HboneClientPoolStats | null;
  hboneServers: PodHboneServers[];
  /** Raw fds the worker holds outside any handle (its fd ledger): netns fds, pooled sockets, listener copies not yet served. */
  heldFds: number;
  /** Per-cluster L7 state: requests in flight, endpoints' outlier state (/config_dump l7Clusters). */
  l7Clusters: ClusterReport[];
}

/** Every fd of a share: the pod's netns and the copies of its listeners. */
export function shareFds(share: PodWorkerShare): number[] {
  const l = share.listeners;
  return [share.netnsFd, ...l.outbound, ...l.inbound, ...l.hbone];
}

/** Closes every fd of a share (the main thread's copies for a worker that never received them, or a worker's own). */
export function closeShare(share: PodWorkerShare): void {
  for (const fd of shareFds(share)) closeFdQuietly(fd);
}

const toWirePolicy = (p: CompiledPolicy): WirePolicy => ({ name: p.name, rules: p.rules.map(({ name, permissions, principals }) => ({ name, permissions, principals })) });
const fromWirePolicy = (p: WirePolicy): CompiledPolicy => compilePolicy(p.name, p.rules);

const toWireView = (v: PolicyView): WireView => ({ deny: v.deny.map(toWirePolicy), allow: v.allow && v.allow.map(toWirePolicy) });
const fromWireView = (v: WireView): PolicyView => ({ deny: v.deny.map(fromWirePolicy), allow: v.allow && v.allow.map(fromWirePolicy) });

export function toWire(r: AgentResource): WireResource {
  if (r.kind !== 'inbound') return r;
  const policies = new Map<string, WireInboundPolicy>();
  for (const [ip, p] of r.policies) {
    const w: WireInboundPolicy = { mtlsMode: p.mtlsMode, ...toWireView(p) };
    if (p.http) w.http = toWireView(p.http);
    policies.set(ip, w);
  }
  return { ...r, policies };
}

export function fromWire(r: WireResource): AgentResource {
  if (r.kind !== 'inbound') return r;
  const policies = new Map<string, InboundPolicy>();
  for (const [ip, p] of r.policies) {
    const policy: InboundPolicy = { mtlsMode: p.mtlsMode, ...fromWireView(p) };
    if (p.http) policy.http = fromWireView(p.http);
    policies.set(ip, policy);
  }
  return { ...r, policies };
}
