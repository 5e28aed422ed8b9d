// Prometheus metrics of the CA, registered in the control plane's registry.

import { Counter, type Registry } from 'prom-client';
import { REFUSAL_REASONS, type RefusalReason } from './errors';

export class CaMetrics {
  readonly issued: Counter;
  readonly refused: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.issued = new Counter({ name: 'nodemesh_ca_certificates_issued_total', help: 'Workload certificates signed', registers });
    this.refused = new Counter({
      name: 'nodemesh_ca_requests_refused_total',
      help: 'Certificate requests refused, by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of REFUSAL_REASONS) this.refused.inc({ reason }, 0);
  }

  refuse(reason: RefusalReason): void {
    this.refused.inc({ reason });
  }
}
