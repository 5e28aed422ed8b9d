// Entry of a data-plane worker thread: serves copies of every pod's listeners from its own event loop, so
// the agent's data path runs on more than one core. State arrives from the main thread (see workers.ts).

import { clusterReport } from '../proxy/http/cluster-report';
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { loadNative } from '../datapath/native';
import { WorkerDatapath, type WorkerPodSockets } from '../datapath/worker-datapath';
import { IdentityReplica } from '../identity/replica';
import { ProxyRuntime } from '../proxy/runtime';
import { createLogger } from '../telemetry/logger';
import { reportMetrics } from '../telemetry/mesh-report/build-report';
import { TapHub } from '../telemetry/tap/tap-hub';
import { registerDefaultMetrics } from '../telemetry/default-metrics';
import { ForwardingSpanSink } from '../telemetry/tracing/forwarding-sink';
import { Tracer } from '../telemetry/tracing/tracer';
import { adoptFd, heldFdCount, installFdLedger } from '../util/fd';
import { HEARTBEAT_MS, closeShare, fromWire, shareFds, type FromWorker, type ToWorker, type WorkerData, type WorkerStats } from './worker-protocol';

function main(port: NonNullable<typeof parentPort>, data: WorkerData): void {
  // Raw fds this thread holds are closed at its teardown, even by terminate() (see util/fd.ts).
  installFdLedger(new (loadNative().FdLedger)());
  const beat = new Int32Array(data.heartbeat);
  setInterval(() => Atomics.add(beat, 0, 1), HEARTBEAT_MS).unref();
  const send = (m: FromWorker): void => port.postMessage(m);
  const log = createLogger({ level: data.logLevel }).child({ component: 'proxy', worker: data.index });
  const registry = new Registry();
  if (data.defaultMetrics) registerDefaultMetrics(registry);
  const identity = new IdentityReplica((id) => runtime.identityRotated(id));
  // Spans and tapped requests go to the main thread, which owns the exporter and the control-plane stream.
  const spanSink = data.tracing?.endpoint ? new ForwardingSpanSink((spans) => send({ type: 'spans', spans }), registry) : null;
  const tracer = data.tracing ? new Tracer({ sampling: data.tracing.sampling, sink: spanSink, registry, node: data.node }) : null;
  const tap = new TapHub();
  tap.onDeliver((events, dropped) => send({ type: 'tap-events', events, dropped }));
  const runtime = new ProxyRuntime({
    log,
    registry,
    bufferSize: data.bufferSize,
    connectTimeoutMs: data.connectTimeoutMs,
    mesh: data.mesh ? { identity, trustDomain: data.mesh.trustDomain, keepalive: data.mesh.keepalive, handshakes: data.mesh.handshakes, h2: data.mesh.h2 } : undefined,
    l7: data.l7?.enabled,
    accessLog: data.l7?.accessLog,
    httpIdleTimeoutMs: data.l7?.idleTimeoutMs,
    locality: data.node ? { node: data.node } : undefined,
    relieveMemory: () => loadNative().relieveMemory(),
    tracer,
    tap,
  });
  runtime.tracker.startPeriodicFlush(5_000);
  const datapath = new WorkerDatapath(data.datapath, log);
  const sockets = new Map<string, WorkerPodSockets>();

  const stats = async (reportOnly: boolean): Promise<WorkerStats> => {
    runtime.tracker.flush();
    return {
      index: data.index,
      metrics: reportOnly ? await reportMetrics(registry) : await registry.getMetricsAsJSON(),
      connections: runtime.tracker.snapshot(),
      hboneClient: runtime.ctx.mesh?.pool.stats() ?? null,
      hboneServers: runtime.hboneServers(),
      heldFds: heldFdCount(),
      l7Clusters: runtime.ctx.http ? clusterReport(runtime.ctx.http.states, data.index) : [],
    };
  };

  const handle = async (m: ToWorker): Promise<void> => {
    switch (m.type) {
      case 'pod-add': {
        // From here on this thread owns the fds (the main thread closes those of shares never received).
        for (const fd of shareFds(m.share)) adoptFd(fd);
        send({ type: 'pod-taken', uid: m.pod.uid });
        let s: WorkerPodSockets;
        try {
          s = datapath.pod(m.share);
        } catch (err) {
          closeShare(m.share);
          send({ type: 'pod-failed', uid: m.pod.uid, message: (err as Error).message });
          return;
        }
        sockets.set(m.pod.uid, s);
        try {
          await runtime.startPod(m.pod, s, m.share.listeners);
        } catch (err) {
          s.release();
          if (sockets.get(m.pod.uid) === s) sockets.delete(m.pod.uid);
          // still a local pod (the other threads serve it): outbound traffic to it must still go over HBONE
          runtime.workloads.upsert(m.pod);
          send({ type: 'pod-failed', uid: m.pod.uid, message: (err as Error).message });
        }
        return;
      }
      case 'pod-remove':
        runtime.stopPod(m.uid);
        runtime.workloads.remove(m.uid);
        sockets.get(m.uid)?.release();
        sockets.delete(m.uid);
        return;
      case 'xds':
        runtime.applyResources(m.typeUrl, m.resources.map(fromWire));
        return;
      case 'identity':
        identity.update(m.id, m.bundle, m.roots);
        return;
      case 'identity-failed':
        identity.fail(m.id, m.message);
        return;
      case 'identity-forget':
        identity.forget(m.id);
        return;
      case 'log-level':
        log.level = m.level;
        return;
      case 'tap':
        tap.subscribe(m.filters);
        return;
      case 'stop':
        runtime.stopAll({ keepHbone: m.keepHbone });
        return;
      case 'call':
        try {
          if (m.method === 'stats') {
            send({ type: 'reply', seq: m.seq, value: await stats(m.reportOnly === true) });
          } else {
            const left = await runtime.drain(m.deadlineMs, { keepHbone: m.keepHbone });
            spanSink?.flush();
            tap.close();
            runtime.destroy();
            for (const s of sockets.values()) s.release();
            sockets.clear();
            datapath.close();
            send({ type: 'reply', seq: m.seq, value: left });
          }
        } catch (err) {
          send({ type: 'reply', seq: m.seq, error: (err as Error).message });
        }
        return;
    }
  };

  // A crash must not leave copies of listener fds open (with nobody accepting) or netns fds pinned.
  process.on('exit', () => {
    for (const [uid, s] of sockets) {
      runtime.stopPod(uid);
      s.release();
    }
  });
  port.on('message', (m: ToWorker) => {
    handle(m).catch((err: unknown) => log.error({ err, message: m.type }, 'worker could not handle a message from the main thread'));
  });
  send({ type: 'ready' });
}

if (parentPort) main(parentPort, workerData as WorkerData);
