// The agent's own state as metrics, for alerting rules and dashboards: whether it is ready (what
// /healthz/ready answers) and which version runs.

import { Gauge, type Registry } from 'prom-client';

export function registerAgentStatusMetrics(registry: Registry, o: { ready: () => boolean; version: string }): void {
  new Gauge({
    name: 'nodemesh_agent_ready',
    help: '1 when the agent answers /healthz/ready with 200 (datapath attached, pods reconciled, first config from the control plane), else 0',
    registers: [registry],
    collect() {
      this.set(o.ready() ? 1 : 0);
    },
  });
  // No node label: Prometheus's target labels name the node (a clash would become exported_node).
  const info = new Gauge({ name: 'nodemesh_build_info', help: 'Always 1: the version of the running agent', labelNames: ['version'], registers: [registry] });
  info.set({ version: o.version }, 1);
}
