// Counters of what the resilience layers did, by cluster (bounded by config, never by client input):
// retries and their budgets, breaker overflows, outlier ejections, mirrored requests, injected faults.

import { Counter, type Registry } from 'prom-client';

export class ResilienceMetrics {
  readonly retries: Counter<'cluster' | 'reason'>;
  readonly retryBudgetExhausted: Counter<'cluster' | 'budget'>;
  readonly overflow: Counter<'cluster' | 'limit'>;
  readonly ejections: Counter<'cluster'>;
  readonly mirrors: Counter<'cluster' | 'outcome'>;
  readonly faults: Counter<'route' | 'kind'>;

  constructor(registry: Registry) {
    this.retries = new Counter({ name: 'nodemesh_retries_total', help: 'Upstream retries, by cluster and what was retried', labelNames: ['cluster', 'reason'], registers: [registry] });
    this.retryBudgetExhausted = new Counter({
      name: 'nodemesh_retry_budget_exhausted_total',
      help: 'Retries not made because a retry budget was spent (rate: Linkerd-style ratio over a window; concurrency: Envoy retry_budget; max_retries: the connection pool limit)',
      labelNames: ['cluster', 'budget'],
      registers: [registry],
    });
    this.overflow = new Counter({ name: 'nodemesh_circuit_breaker_overflow_total', help: 'Requests refused 503 (UO) because a connection-pool limit was reached', labelNames: ['cluster', 'limit'], registers: [registry] });
    this.ejections = new Counter({ name: 'nodemesh_outlier_ejections_total', help: 'Endpoints ejected by outlier detection', labelNames: ['cluster'], registers: [registry] });
    this.mirrors = new Counter({ name: 'nodemesh_mirrored_requests_total', help: 'Requests mirrored, by mirror cluster and outcome (ok, failed, skipped)', labelNames: ['cluster', 'outcome'], registers: [registry] });
    this.faults = new Counter({ name: 'nodemesh_injected_faults_total', help: 'Faults injected by a route (delay, abort)', labelNames: ['route', 'kind'], registers: [registry] });
  }
}
