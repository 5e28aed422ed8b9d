// The agent's end of the mesh telemetry stream: a report every few seconds, tapped requests as they come,
// and the tap filters the control plane sends down. Reconnects with backoff; nothing here is on the request
// path (tapped requests arrive in batches from the tap hubs).

import * as grpc from '@grpc/grpc-js';
import { channelCredentials, type ControlPlaneTls } from '../../xds/channel-credentials';
import type { Logger } from '../logger';
import { validateTapFilter, type TapEvent, type TapFilter } from '../tap/tap-filter';
import { telemetryService, type AgentMessage, type AgentReport, type ControlMessage, type WireTapEvent } from './telemetry-proto';

export interface ReportClientOptions {
  /** The control plane: `host:port` or `unix:///path` (its xDS address). */
  address: string;
  /** Dial it as xDS is dialled: TLS verified with the mesh root, the node token on every stream. */
  tls?: ControlPlaneTls;
  log: Logger;
  /** Builds the next report (every `intervalMs`). */
  report: () => Promise<AgentReport>;
  /** The tap filters in force changed. */
  onTap: (filters: TapFilter[]) => void;
  intervalMs?: number;
}

export function toWireEvent(e: TapEvent): WireTapEvent {
  return {
    time_ms: e.time,
    node: e.node,
    reporter: e.reporter,
    source_workload: e.sourceWorkload,
    source_namespace: e.sourceNamespace,
    destination_workload: e.destinationWorkload,
    destination_namespace: e.destinationNamespace,
    destination_service: e.destinationService,
    method: e.method,
    authority: e.authority,
    path: e.path,
    status: e.status,
    grpc_status: e.grpcStatus ?? '',
    flags: e.flags,
    route: e.route ?? '',
    cluster: e.cluster ?? '',
    endpoint: e.endpoint ?? '',
    latency_ms: e.latencyMs,
    mtls: e.mtls,
    request_id: e.requestId,
    trace_id: e.traceId ?? '',
    trace_kept: e.traceKept,
  };
}

export function fromWireEvent(w: WireTapEvent): TapEvent {
  return {
    time: w.time_ms,
    node: w.node,
    reporter: w.reporter === 'destination' ? 'destination' : 'source',
    sourceWorkload: w.source_workload,
    sourceNamespace: w.source_namespace,
    destinationWorkload: w.destination_workload,
    destinationNamespace: w.destination_namespace,
    destinationService: w.destination_service,
    method: w.method,
    authority: w.authority,
    path: w.path,
    status: w.status,
    grpcStatus: w.grpc_status || null,
    flags: w.flags,
    route: w.route || null,
    cluster: w.cluster || null,
    endpoint: w.endpoint || null,
    latencyMs: w.latency_ms,
    mtls: w.mtls,
    requestId: w.request_id,
    traceId: w.trace_id || null,
    traceKept: w.trace_kept,
  };
}

export class ReportClient {
  private readonly client: grpc.Client;
  private call: grpc.ClientDuplexStream<AgentMessage, ControlMessage> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private backoffMs = 500;
  private closed = false;
  private sending = false;

  constructor(private readonly o: ReportClientOptions) {
    const Client = grpc.makeGenericClientConstructor(telemetryService(), 'MeshTelemetry');
    const { creds, options } = channelCredentials(o.tls);
    this.client = new Client(o.address, creds, options);
  }

  start(): void {
    this.connect();
    this.timer = setInterval(() => void this.sendReport(), this.o.intervalMs ?? 2000);
    this.timer.unref();
  }

  /** Tapped requests from any thread. */
  sendTap(events: TapEvent[], dropped: number): void {
    if (this.call === null) return;
    this.call.write({ tap: { events: events.map(toWireEvent), dropped } });
  }

  private connect(): void {
    if (this.closed) return;
    const call = (this.client as unknown as { Connect(): grpc.ClientDuplexStream<AgentMessage, ControlMessage> }).Connect();
    this.call = call;
    call.on('data', (m: ControlMessage) => {
      this.backoffMs = 500;
      const filters: TapFilter[] = [];
      for (const f of m.tap_filters ?? []) {
        try {
          filters.push(validateTapFilter({ namespace: f.namespace, workload: f.workload, path: f.path_prefix, status: f.status, reporter: f.reporter }));
        } catch (err) {
          this.o.log.warn({ err }, 'the control plane sent a tap filter this agent cannot use; ignored');
        }
      }
      this.o.onTap(filters);
    });
    const ended = (why: string, err?: unknown): void => {
      if (this.call !== call) return;
      this.call = null;
      // No control plane, no tap: stop matching requests nobody will see.
      this.o.onTap([]);
      if (this.closed) return;
      this.o.log.debug({ why, err }, 'mesh telemetry stream ended; reconnecting');
      this.retry = setTimeout(() => this.connect(), Math.random() * this.backoffMs);
      this.retry.unref();
      this.backoffMs = Math.min(30_000, this.backoffMs * 2);
    };
    call.on('error', (err) => ended('error', err));
    call.on('end', () => ended('end'));
    void this.sendReport();
  }

  private async sendReport(): Promise<void> {
    if (this.call === null || this.sending) return;
    this.sending = true;
    try {
      const report = await this.o.report();
      this.call?.write({ report });
    } catch (err) {
      this.o.log.warn({ err }, 'cannot build the telemetry report');
    } finally {
      this.sending = false;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    this.call?.cancel();
    this.call = null;
    this.client.close();
  }
}
