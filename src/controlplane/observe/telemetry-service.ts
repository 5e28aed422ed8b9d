// The control plane's end of the mesh telemetry stream: each connected agent's reports go to the
// MeshDirectory, its tapped requests to the TapBroker, and the broker's filter set goes down to it.

import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger';
import { fromWireEvent } from '../../telemetry/mesh-report/report-client';
import { telemetryService, type AgentMessage, type ControlMessage } from '../../telemetry/mesh-report/telemetry-proto';
import type { TapFilter } from '../../telemetry/tap/tap-filter';
import type { MeshDirectory } from './mesh-directory';
import type { TapBroker } from './tap-broker';

const wireFilter = (f: TapFilter): ControlMessage['tap_filters'][number] => ({ namespace: f.namespace, workload: f.workload, path_prefix: f.pathPrefix, status: f.status, reporter: f.reporter });

export class TelemetryService {
  private readonly streams: Gauge<string>;
  private readonly reports: Counter<string>;
  private readonly tapEvents: Counter<string>;

  constructor(
    private readonly dir: MeshDirectory,
    private readonly tap: TapBroker,
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.streams = new Gauge({ name: 'nodemesh_controlplane_telemetry_streams', help: 'Agents streaming telemetry to this control plane', registers: [registry] });
    this.reports = new Counter({ name: 'nodemesh_controlplane_telemetry_reports_total', help: 'Agent reports received', registers: [registry] });
    this.tapEvents = new Counter({ name: 'nodemesh_controlplane_tap_events_total', help: 'Tapped requests received from agents', registers: [registry] });
  }

  /**
   * `authenticate` (the TLS listener): each stream carries the agent's node credential, and a report may only
   * speak for that node; the plaintext listener (loopback, the lab's unix socket) takes any.
   */
  grpcService(authenticate?: (md: grpc.Metadata) => Promise<string>): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
    return {
      definition: telemetryService(),
      handlers: { Connect: (call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>) => this.connect(call, authenticate) },
    };
  }

  private connect(call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>, authenticate?: (md: grpc.Metadata) => Promise<string>): void {
    if (authenticate) {
      // nothing is read until the credential is checked: the stream stays paused meanwhile
      call.pause();
      authenticate(call.metadata).then(
        (node) => {
          this.serve(call, node);
          call.resume();
        },
        (err: { status?: grpc.status; message?: string }) => {
          this.log.warn({ peer: call.getPeer(), reason: err.message }, 'telemetry stream refused');
          call.emit('error', { code: err.status ?? grpc.status.UNAUTHENTICATED, details: err.message ?? String(err) });
        },
      );
      return;
    }
    this.serve(call, null);
  }

  /** `authenticated`: the node the stream's credential names (null: not checked). */
  private serve(call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>, authenticated: string | null): void {
    this.streams.inc();
    let node: string | null = null;
    const stop = this.tap.onFilters((filters) => call.write({ tap_filters: filters.map(wireFilter) }));
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      stop();
      this.streams.dec();
      if (node !== null) this.dir.disconnected(node);
      this.log.debug({ node }, 'agent telemetry stream ended');
    };
    call.on('data', (m: AgentMessage) => {
      try {
        if (m.report) {
          if (authenticated !== null && m.report.node !== authenticated) {
            this.log.warn({ node: authenticated, claimed: m.report.node }, 'a report for another node than the credential names; ignored');
            return;
          }
          node = m.report.node;
          this.reports.inc();
          this.dir.ingest(m.report);
        } else if (m.tap) {
          this.tapEvents.inc(m.tap.events.length);
          this.tap.publish(m.tap.events.map(fromWireEvent), Number(m.tap.dropped) || 0);
        }
      } catch (err) {
        this.log.warn({ err, node }, 'unusable telemetry message; ignored');
      }
    });
    call.on('end', () => {
      call.end();
      finish();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
  }
}
