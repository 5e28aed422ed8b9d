// Prometheus metrics of the proxy, named and labelled like Istio's so existing dashboards work.

import { Counter, Gauge, Registry } from 'prom-client';

/** Istio's standard TCP metric labels (subset that a node proxy can fill). */
export const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'connection_security_policy',
  'response_flags',
] as const;

export type TcpLabelName = (typeof TCP_LABELS)[number];
export type TcpLabels = Record<TcpLabelName, string>;

export class ProxyMetrics {
  readonly registry: Registry;
  readonly tcpOpened: Counter<TcpLabelName>;
  readonly tcpClosed: Counter<TcpLabelName>;
  /** Istio: bytes sent during the response (server -> client). */
  readonly tcpSent: Counter<TcpLabelName>;
  /** Istio: bytes received during the request (client -> server). */
  readonly tcpReceived: Counter<TcpLabelName>;
  readonly activeConnections: Gauge<'direction'>;
  /** Connections the proxy refused or could not serve, by reason. */
  readonly proxyErrors: Counter<'direction' | 'reason'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const labelNames = [...TCP_LABELS];
    this.tcpOpened = new Counter({
      name: 'istio_tcp_connections_opened_total',
      help: 'TCP connections opened',
      labelNames,
      registers: [registry],
    });
    this.tcpClosed = new Counter({
      name: 'istio_tcp_connections_closed_total',
      help: 'TCP connections closed',
      labelNames,
      registers: [registry],
    });
    this.tcpSent = new Counter({
      name: 'istio_tcp_sent_bytes_total',
      help: 'Bytes sent during response (server to client)',
      labelNames,
      registers: [registry],
    });
    this.tcpReceived = new Counter({
      name: 'istio_tcp_received_bytes_total',
      help: 'Bytes received during request (client to server)',
      labelNames,
      registers: [registry],
    });
    this.activeConnections = new Gauge({
      name: 'nodemesh_active_connections',
      help: 'Connections currently relayed by the agent',
      labelNames: ['direction'],
      registers: [registry],
    });
    this.proxyErrors = new Counter({
      name: 'nodemesh_proxy_errors_total',
      help: 'Connections the proxy refused or could not serve, by reason',
      labelNames: ['direction', 'reason'],
      registers: [registry],
    });
  }
}
