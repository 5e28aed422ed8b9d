// One downstream HTTP connection as the layers see it: which pod, which direction, who is asking, where it
// was going. Built once per connection by the stack that accepted it; every request on it shares it.

import type { PortProtocol, ServicePort } from '../../state/routes';
import type { Workload } from '../../state/workloads';
import type { Endpoint } from '../connection-tracker';
import type { PodSockets } from '../context';

export interface HttpConn {
  direction: 'outbound' | 'inbound';
  /** The local pod: the client (outbound) or the server (inbound). */
  pod: Workload;
  sockets: PodSockets;
  /** The client's address as the agent saw it. */
  src: Endpoint;
  /** Where the client meant to go: a Service VIP:port or a pod IP:port. */
  dst: Endpoint;
  /** Outbound to a Service VIP:port: the Service port with its routes. */
  service: ServicePort | null;
  /** The port's protocol as declared or detected. */
  protocol: PortProtocol;
  /** Inbound: the peer's SPIFFE ID (null for plaintext). Outbound: the local pod's, when it has one. */
  principal: string | null;
  /** Labels that are the same for every request of the connection (Istio names). */
  labels: ConnLabels;
  /** `labels` as one string, made once per connection by telemetry (the first part of its cache key). */
  labelKey?: string;
}

/** The request-metric labels fixed per connection; the rest are per request. */
export interface ConnLabels {
  reporter: 'source' | 'destination';
  source_workload: string;
  source_workload_namespace: string;
  source_principal: string;
  source_app: string;
  source_version: string;
  /** Outbound: filled per request (the endpoint chosen); inbound: the local pod. */
  destination_workload: string;
  destination_workload_namespace: string;
  destination_principal: string;
  destination_app: string;
  destination_version: string;
  destination_service: string;
  destination_service_name: string;
  destination_service_namespace: string;
  connection_security_policy: string;
}
