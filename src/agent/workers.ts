// The agent's data-plane worker threads, seen from the main thread: each serves its own copies of every
// pod's listener fds, so accepted connections spread over the node's cores. The main thread alone enrolls
// pods, talks to the control plane and the CA, and pushes what the workers need; it replays everything to
// a worker that restarts after a crash.

import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Counter, type Registry } from 'prom-client';
import type { DatapathWorkerShare, PodDatapath, PodWorkerShare } from '../datapath/types';
import type { CertBundle } from '../identity/types';
import type { KeepaliveTiming } from '../proxy/hbone/h2/session';
import type { HandshakeOptions } from '../proxy/hbone/handshake-limits';
import type { H2EngineName } from '../proxy/hbone/h2-engine';
import type { Workload } from '../state/workloads';
import type { Logger } from '../telemetry/logger';
import type { AgentResource } from '../xds/agent-resources';
import type { L7Options } from '../proxy/runtime';
import type { TapEvent, TapFilter } from '../telemetry/tap/tap-filter';
import type { SpanRecord } from '../telemetry/tracing/span';
import type { TracingOptions } from '../telemetry/tracing/tracing-config';
import { HEARTBEAT_MS, closeShare, toWire, type FromWorker, type ToWorker, type WireResource, type WorkerData, type WorkerStats } from './worker-protocol';

export interface DataPlaneWorkersOptions {
  /** Worker threads besides the main thread (which serves too). */
  count: number;
  log: Logger;
  registry: Registry;
  logLevel: () => string;
  datapath: DatapathWorkerShare;
  bufferSize?: number;
  connectTimeoutMs?: number;
  mesh: { trustDomain: string; keepalive?: KeepaliveTiming | null; handshakes?: HandshakeOptions; h2?: H2EngineName } | null;
  l7?: L7Options;
  /** The node's name, for locality-aware balancing. */
  node?: string;
  /** Time to the first restart of a crashed worker; doubles while it keeps crashing within a minute. Default 500 ms. */
  restartDelayMs?: number;
  /**
   * A worker whose event loop has not run for this long is terminated and restarted: its open connections
   * are lost either way, and new ones go to the other threads meanwhile. Default 10 s; 0 disables.
   */
  stallTimeoutMs?: number;
  /** Each worker collects its own `nodejs_*` metrics (heap, GC, event-loop lag are per thread). */
  defaultMetrics?: boolean;
  /** Tracing for the workers' tracers; their spans and tapped requests come back through the callbacks. */
  tracing?: TracingOptions;
  onSpans?: (spans: SpanRecord[]) => void;
  onTap?: (events: TapEvent[], dropped: number) => void;
  /** The worker script (default worker-main.js; tests substitute a scripted one). */
  entry?: string;
}

export interface WorkerStatus {
  index: number;
  threadId: number | null;
  state: 'starting' | 'running' | 'stalled' | 'restarting' | 'stopped';
  restarts: number;
  lastExit: string | null;
}

interface SharedPod {
  pod: Workload;
  dp: PodDatapath;
  /** Whether the main thread still holds the pod's 15008 fds (false: no mesh, or its certificate failed). */
  hbone: () => boolean;
}

type IdentityState = { bundle: CertBundle; roots: string[] } | { failed: string };
type RestartReason = 'crashed' | 'stalled';

const MAX_RESTART_DELAY_MS = 30_000;
const CALL_TIMEOUT_MS = 2_000;
const STABLE_AFTER_MS = 60_000;
const DEFAULT_STALL_TIMEOUT_MS = 10_000;

class WorkerSlot {
  worker: Worker | null = null;
  state: WorkerStatus['state'] = 'starting';
  restarts = 0;
  crashesInARow = 0;
  startedAt = 0;
  lastExit: string | null = null;
  restartTimer: NodeJS.Timeout | null = null;
  reason: RestartReason = 'crashed';
  /** Incremented by the worker's event loop (HEARTBEAT_MS); read by the watchdog. */
  readonly heartbeat = new Int32Array(new SharedArrayBuffer(4));
  lastBeat = 0;
  lastBeatSeenAt = 0;
  stalledAt = 0;
  readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Shares posted and not yet received: if the worker dies first, their fds are closed here. */
  readonly inFlight: PodWorkerShare[] = [];

  constructor(readonly index: number) {}
}

export class DataPlaneWorkers {
  private readonly slots: WorkerSlot[] = [];
  private readonly pods = new Map<string, SharedPod>();
  private readonly xds = new Map<string, WireResource[]>();
  private readonly identities = new Map<string, IdentityState>();
  private tapFilters: TapFilter[] = [];
  private readonly restartsTotal: Counter;
  private readonly stallsTotal: Counter;
  private watchdog: NodeJS.Timeout | null = null;
  private seq = 0;
  private stopping = false;

  constructor(private readonly opts: DataPlaneWorkersOptions) {
    this.restartsTotal = new Counter({
      name: 'nodemesh_worker_restarts_total',
      help: 'Data-plane worker threads restarted after they crashed or stalled (their open connections were lost)',
      labelNames: ['reason'],
      registers: [opts.registry],
    });
    this.stallsTotal = new Counter({
      name: 'nodemesh_worker_stalls_total',
      help: 'Data-plane worker threads terminated because their event loop stopped running',
      registers: [opts.registry],
    });
    // both series from the start: an alert on rate() or absent() needs the zeros
    for (const reason of ['crashed', 'stalled'] satisfies RestartReason[]) this.restartsTotal.inc({ reason }, 0);
    for (let i = 1; i <= opts.count; i++) this.slots.push(new WorkerSlot(i));
  }

  /** Starts every worker and waits until each listens for state. */
  async start(): Promise<void> {
    const stallMs = this.opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    if (stallMs > 0) this.startWatchdog(Math.max(stallMs, 4 * HEARTBEAT_MS));
    await Promise.all(
      this.slots.map((s) => {
        try {
          return this.spawn(s);
        } catch (err) {
          s.lastExit = (err as Error).message;
          this.scheduleRestart(s);
          return Promise.reject(err);
        }
      }),
    );
  }

  private spawn(slot: WorkerSlot): Promise<void> {
    const data: WorkerData = {
      index: slot.index,
      logLevel: this.opts.logLevel(),
      bufferSize: this.opts.bufferSize,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      datapath: this.opts.datapath,
      mesh: this.opts.mesh,
      l7: this.opts.l7,
      node: this.opts.node,
      tracing: this.opts.tracing,
      defaultMetrics: this.opts.defaultMetrics,
      heartbeat: slot.heartbeat.buffer as SharedArrayBuffer,
    };
    const worker = new Worker(this.opts.entry ?? path.join(__dirname, 'worker-main.js'), { workerData: data });
    slot.worker = worker;
    slot.state = 'starting';
    slot.startedAt = Date.now();
    slot.lastBeat = Atomics.load(slot.heartbeat, 0);
    slot.lastBeatSeenAt = slot.startedAt;
    // Messages queue until the worker listens: replay the state it needs before anything new.
    for (const [typeUrl, resources] of this.xds) this.post(slot, { type: 'xds', typeUrl, resources });
    for (const [id, st] of this.identities) this.post(slot, identityMessage(id, st));
    for (const p of this.pods.values()) this.sharePod(slot, p);
    if (this.tapFilters.length > 0) this.post(slot, { type: 'tap', filters: this.tapFilters });
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`worker ${slot.index} exited with code ${code} before it was ready`)));
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          slot.state = 'running';
          resolve();
        } else {
          this.onMessage(slot, m);
        }
      });
    });
    worker.on('error', (err) => {
      slot.lastExit = err.message;
      this.opts.log.error({ err, worker: slot.index }, 'data-plane worker failed; its open connections are lost');
    });
    worker.on('exit', (code) => this.onExit(slot, worker, code));
    return ready;
  }

  private onMessage(slot: WorkerSlot, m: FromWorker): void {
    if (m.type === 'pod-taken') {
      const i = slot.inFlight.findIndex((s) => s.uid === m.uid);
      if (i >= 0) slot.inFlight.splice(i, 1);
    } else if (m.type === 'pod-failed') {
      this.opts.log.error({ worker: slot.index, uid: m.uid, err: m.message }, 'worker cannot serve the pod; the other threads still do');
    } else if (m.type === 'spans') {
      this.opts.onSpans?.(m.spans);
    } else if (m.type === 'tap-events') {
      this.opts.onTap?.(m.events, m.dropped);
    } else if (m.type === 'reply') {
      const call = slot.calls.get(m.seq);
      slot.calls.delete(m.seq);
      if (m.error !== undefined) call?.reject(new Error(`worker ${slot.index}: ${m.error}`));
      else call?.resolve(m.value);
    }
  }

  private startWatchdog(stallMs: number): void {
    const tickMs = Math.min(1000, stallMs / 4);
    let lastTick = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      // A late tick means the whole process was paused (SIGSTOP, a frozen cgroup, a suspended VM) or the main
      // thread was blocked: a worker may not have had its turn to beat yet, so the silence counts from now.
      const late = now - lastTick > tickMs + 2 * HEARTBEAT_MS;
      lastTick = now;
      this.checkHeartbeats(stallMs, now, late);
    }, tickMs);
    this.watchdog.unref();
  }

  /**
   * A worker whose heartbeat has not moved for `stallMs` (an endless loop, a pathological input) holds its
   * connections hostage and its share of the CPU: terminate it, and the exit handler restarts it. Its raw
   * fds are closed by its fd ledger at teardown (util/fd.ts), its handles by Node. A worker still starting
   * (loading modules, opening the pinned map: no heartbeat yet) gets twice as long, then the same; start()
   * would otherwise wait for it forever.
   */
  private checkHeartbeats(stallMs: number, now: number, late: boolean): void {
    for (const slot of this.slots) {
      if (this.stopping || !slot.worker) continue;
      if (slot.state === 'stalled' && now - slot.stalledAt > stallMs) {
        // Stuck where terminate() cannot reach (native code, a blocking syscall): give up on it. Its fd copies
        // stay open with it, harmless duplicates of sockets the other threads serve; a replacement starts.
        this.opts.log.error({ worker: slot.index, threadId: slot.worker.threadId }, 'stalled data-plane worker did not exit when terminated; abandoning it and starting another');
        this.detach(slot, 'abandoned');
        continue;
      }
      if (slot.state !== 'running' && slot.state !== 'starting') continue;
      const beat = Atomics.load(slot.heartbeat, 0);
      if (beat !== slot.lastBeat || late) {
        slot.lastBeat = beat;
        slot.lastBeatSeenAt = now;
        continue;
      }
      const silentMs = now - slot.lastBeatSeenAt;
      if (silentMs < (slot.state === 'starting' ? 2 * stallMs : stallMs)) continue;
      const seconds = Math.round(silentMs / 100) / 10;
      slot.lastExit = slot.state === 'starting' ? `not ready after ${seconds} s` : `event loop stalled for ${seconds} s`;
      slot.state = 'stalled';
      slot.stalledAt = now;
      slot.reason = 'stalled';
      this.stallsTotal.inc();
      this.opts.log.error({ worker: slot.index, silentMs }, 'data-plane worker stopped running its event loop; terminating it (its open connections are lost)');
      void slot.worker.terminate();
    }
  }

  private onExit(slot: WorkerSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    this.detach(slot, `exit code ${code}`);
  }

  /** The slot's worker is gone (or given up on): shares it never received are closed, calls fail, a restart follows. */
  private detach(slot: WorkerSlot, why: string): void {
    slot.worker = null;
    for (const share of slot.inFlight.splice(0)) closeShare(share);
    for (const c of slot.calls.values()) c.reject(new Error(`worker ${slot.index} exited (${why})`));
    slot.calls.clear();
    if (this.stopping) {
      slot.state = 'stopped';
      return;
    }
    slot.lastExit ??= why;
    this.scheduleRestart(slot);
  }

  private scheduleRestart(slot: WorkerSlot): void {
    slot.crashesInARow = Date.now() - slot.startedAt > STABLE_AFTER_MS ? 1 : slot.crashesInARow + 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, (this.opts.restartDelayMs ?? 500) * 2 ** (slot.crashesInARow - 1));
    slot.state = 'restarting';
    this.opts.log.error({ worker: slot.index, lastExit: slot.lastExit, restartInMs: delay }, 'data-plane worker exited; restarting it with the current state');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.stopping) return;
      slot.restarts++;
      this.restartsTotal.inc({ reason: slot.reason });
      slot.reason = 'crashed';
      slot.lastExit = null;
      try {
        this.spawn(slot).catch((err: unknown) => this.opts.log.error({ err, worker: slot.index }, 'restarted data-plane worker failed to start'));
      } catch (err) {
        // no thread at all (resources): try again later, the main thread serves meanwhile
        slot.lastExit = (err as Error).message;
        this.scheduleRestart(slot);
      }
    }, delay);
  }

  private post(slot: WorkerSlot, m: ToWorker): void {
    slot.worker?.postMessage(m);
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) this.post(s, m);
  }

  /** A failure (no fd left to copy) costs this worker the pod, not the agent: the other threads serve it. */
  private sharePod(slot: WorkerSlot, p: SharedPod): void {
    if (!slot.worker) return;
    let share: PodWorkerShare;
    try {
      // Once the main thread has closed its 15008 fds (no mesh, or no certificate), a copy must not keep the
      // socket listening with nobody to accept.
      share = p.dp.shareWithWorker!({ hbone: p.hbone() });
    } catch (err) {
      this.opts.log.error({ err, worker: slot.index, uid: p.pod.uid }, 'cannot copy the pod\'s fds for a worker; the other threads serve it');
      return;
    }
    slot.inFlight.push(share);
    this.post(slot, { type: 'pod-add', pod: p.pod, share });
  }

  /** A pod the main thread serves now: every worker serves copies of its fds too. */
  addPod(pod: Workload, dp: PodDatapath, hbone: () => boolean): void {
    const p = { pod, dp, hbone };
    this.pods.set(pod.uid, p);
    for (const s of this.slots) this.sharePod(s, p);
  }

  removePod(uid: string): void {
    if (!this.pods.delete(uid)) return;
    this.broadcast({ type: 'pod-remove', uid });
  }

  applyResources(typeUrl: string, resources: AgentResource[]): void {
    const wire = resources.map(toWire);
    this.xds.set(typeUrl, wire);
    this.broadcast({ type: 'xds', typeUrl, resources: wire });
  }

  identityIssued(id: string, bundle: CertBundle, roots: string[]): void {
    const known = this.identities.get(id);
    if (known && 'bundle' in known && known.bundle.serial === bundle.serial) return;
    this.setIdentity(id, { bundle, roots });
  }

  /** A pod (again) holds `id`: a failure recorded for an earlier pod must not greet the new one. */
  identityWanted(id: string): void {
    const st = this.identities.get(id);
    if (!st || !('failed' in st)) return;
    this.identities.delete(id);
    this.broadcast({ type: 'identity-forget', id });
  }

  identityFailed(id: string, message: string): void {
    if (this.identities.has(id) && !('failed' in this.identities.get(id)!)) return;
    this.setIdentity(id, { failed: message });
  }

  forgetIdentity(id: string): void {
    if (!this.identities.delete(id)) return;
    this.broadcast({ type: 'identity-forget', id });
  }

  private setIdentity(id: string, st: IdentityState): void {
    this.identities.set(id, st);
    this.broadcast(identityMessage(id, st));
  }

  setLogLevel(level: string): void {
    this.broadcast({ type: 'log-level', level });
  }

  /** The live-tap filters every worker matches from now on (and a restarted one gets). */
  setTap(filters: TapFilter[]): void {
    this.tapFilters = filters;
    this.broadcast({ type: 'tap', filters });
  }

  /** A worker whose event loop is stuck must not hang the admin endpoints or shutdown: calls have a deadline. */
  private call<T>(slot: WorkerSlot, m: Extract<ToWorker, { type: 'call' }>, timeoutMs: number): Promise<T> {
    if (!slot.worker) return Promise.reject(new Error(`worker ${slot.index} is not running`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.calls.delete(m.seq);
        reject(new Error(`worker ${slot.index} did not answer ${m.method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = <A>(fn: (a: A) => void) => (a: A): void => {
        clearTimeout(timer);
        fn(a);
      };
      slot.calls.set(m.seq, { resolve: settle(resolve as (v: unknown) => void), reject: settle(reject) });
      this.post(slot, m);
    });
  }

  /**
   * Metrics, connections and HBONE state of every running worker (a worker that cannot answer is left out).
   * `reportOnly`: only the metric series a mesh report reads, not every collector of every thread.
   */
  async stats(opts: { reportOnly?: boolean } = {}): Promise<WorkerStats[]> {
    const all = await Promise.allSettled(this.slots.map((s) => this.call<WorkerStats>(s, { type: 'call', seq: ++this.seq, method: 'stats', reportOnly: opts.reportOnly }, CALL_TIMEOUT_MS)));
    return all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  status(): WorkerStatus[] {
    return this.slots.map((s) => ({ index: s.index, threadId: s.worker?.threadId ?? null, state: s.state, restarts: s.restarts, lastExit: s.lastExit }));
  }

  /**
   * SIGTERM or handover, first step: every worker stops accepting (15008 too unless keepHbone). No restart from now
   * on: a worker that dies while draining loses its connections, as on any crash.
   */
  stopAccepting(opts: { keepHbone?: boolean } = {}): void {
    this.stopping = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const s of this.slots) if (s.restartTimer) clearTimeout(s.restartTimer);
    this.broadcast({ type: 'stop', keepHbone: opts.keepHbone });
  }

  /** Then: every worker drains up to the deadline (then closes 15008 if it was kept) and exits. Returns the connections left open. */
  async drain(deadlineMs: number, opts: { keepHbone?: boolean } = {}): Promise<number> {
    if (!this.stopping) this.stopAccepting(opts);
    const left = await Promise.allSettled(
      this.slots.map((s) => this.call<number>(s, { type: 'call', seq: ++this.seq, method: 'drain', deadlineMs, keepHbone: opts.keepHbone }, deadlineMs + CALL_TIMEOUT_MS)),
    );
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
    return left.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
  }
}

function identityMessage(id: string, st: IdentityState): ToWorker {
  return 'failed' in st ? { type: 'identity-failed', id, message: st.failed } : { type: 'identity', id, bundle: st.bundle, roots: st.roots };
}

/**
 * The agent's worker threads, not started yet, with the config accepted so far queued for them; null when the
 * datapath cannot be shared across threads. The caller keeps the object before starting it: config accepted
 * while the threads start must reach them too.
 */
export function createWorkers(o: {
  threads: number;
  share: DatapathWorkerShare | null;
  log: Logger;
  registry: Registry;
  agent: {
    node: string;
    bufferSize?: number;
    connectTimeoutMs?: number;
    workerStallTimeoutMs?: number;
    mesh?: { trustDomain: string; keepalive?: KeepaliveTiming | null; handshakes?: HandshakeOptions; h2?: H2EngineName };
    l7?: L7Options;
    defaultMetrics?: boolean;
    tracing?: TracingOptions;
  };
  resources: Map<string, AgentResource[]>;
  onSpans?: (spans: SpanRecord[]) => void;
  onTap?: (events: TapEvent[], dropped: number) => void;
}): DataPlaneWorkers | null {
  if (!o.share) {
    o.log.warn({ dataThreads: o.threads }, 'this datapath cannot be shared with worker threads: serving pods from the main thread only');
    return null;
  }
  const workers = new DataPlaneWorkers({
    count: o.threads - 1,
    log: o.log.child({ component: 'workers' }),
    registry: o.registry,
    logLevel: () => o.log.level,
    datapath: o.share,
    bufferSize: o.agent.bufferSize,
    connectTimeoutMs: o.agent.connectTimeoutMs,
    stallTimeoutMs: o.agent.workerStallTimeoutMs,
    mesh: o.agent.mesh ? { trustDomain: o.agent.mesh.trustDomain, keepalive: o.agent.mesh.keepalive, handshakes: o.agent.mesh.handshakes, h2: o.agent.mesh.h2 } : null,
    l7: o.agent.l7,
    node: o.agent.node,
    defaultMetrics: o.agent.defaultMetrics,
    tracing: o.agent.tracing,
    onSpans: o.onSpans,
    onTap: o.onTap,
  });
  // xDS may have answered while the datapath was opening
  for (const [typeUrl, all] of o.resources) workers.applyResources(typeUrl, all);
  return workers;
}
