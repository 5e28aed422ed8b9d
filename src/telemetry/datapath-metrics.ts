// Exposes the kernel-side counters (per-pod redirects, BPF events) as Prometheus metrics at scrape time.

import { Counter, type Registry } from 'prom-client';
import type { Datapath } from '../datapath/types';
import type { WorkloadStore } from '../state/workloads';

export function registerDatapathMetrics(
  registry: Registry,
  datapath: () => Datapath | null,
  workloads: WorkloadStore,
  cookieOf: (uid: string) => bigint | undefined,
): void {
  const perPod = (name: string, help: string, pick: 'redirected' | 'failOpen' | 'failClosedDenied'): void => {
    new Counter({
      name,
      help,
      labelNames: ['pod', 'namespace'],
      registers: [registry],
      collect() {
        this.reset();
        const dp = datapath();
        if (!dp) return;
        for (const w of workloads.list()) {
          const cookie = cookieOf(w.uid);
          const c = cookie === undefined ? null : dp.podCounters(cookie);
          if (c) this.inc({ pod: w.name, namespace: w.namespace }, Number(c[pick]));
        }
      },
    });
  };
  perPod('nodemesh_redirected_connections_total', 'Connects redirected by connect4/6 to the pod\'s outbound listener', 'redirected');
  perPod('nodemesh_fail_open_connections_total', 'Connects left alone (went direct) because the pod\'s listener was missing', 'failOpen');
  perPod('nodemesh_fail_closed_denied_total', 'Connects refused because the pod is fail-closed and its listener was missing', 'failClosedDenied');
  new Counter({
    name: 'nodemesh_bpf_events_total',
    help: 'BPF program events by kind, summed over CPUs',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      const dp = datapath();
      if (!dp) return;
      for (const [event, v] of Object.entries(dp.status().stats)) this.inc({ event }, Number(v));
    },
  });
}
