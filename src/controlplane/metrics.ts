// Prometheus metrics of the control plane: pushes, connected clients, ACK/NACKs, config errors, objects.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONFLICT_KINDS } from './conflicts';

export class ControlPlaneMetrics {
  readonly registry: Registry;
  /** Responses sent, by xDS type (cds/eds/lds/rds) and mode (sotw/delta). */
  readonly pushes: Counter<'type' | 'mode'>;
  /** Open ADS streams (agents and proxyless clients), by mode. */
  readonly connected: Gauge<'mode'>;
  readonly acks: Counter<'type'>;
  readonly nacks: Counter<'type'>;
  /** Rejected documents or files, by reason (syntax/invalid/duplicate). */
  readonly configErrors: Counter<'reason'>;
  readonly objects: Gauge<'kind'>;
  /** Config conflicts found (a Service taking another's clusterIP:port, a pod another's IP, one name in two sources), by kind. */
  readonly conflicts: Counter<'kind'>;
  /** Conflicts in the config now, by kind. */
  readonly openConflicts: Gauge<'kind'>;
  readonly resources: Gauge<'type'>;
  /** Store changes that produced a new snapshot. */
  readonly snapshots: Counter;
  /** DestinationRules by state: applied (to at least one Service port) or unmatched (no Service has its host). */
  readonly destinationRules: Gauge<'state'>;
  /** How long turning the model into a snapshot took (pieces whose inputs did not change are reused). */
  readonly translateSeconds: Histogram;
  /** Pieces (a Service's resources, a pod's chains, a node's listener, ...) encoded anew or reused, per build. */
  readonly translatedPieces: Counter<'result'>;
  /** Size of each response sent, by mode: what the agents' message limit is measured against. */
  readonly responseBytes: Histogram<'mode'>;
  /** Resources or whole responses not sent because they exceed the message limit, by type. */
  readonly withheld: Counter<'type'>;
  /** Names a stream asked for beyond the per-stream bound, not served. */
  readonly refusedNames: Counter;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.pushes = new Counter({ name: 'nodemesh_xds_pushes_total', help: 'xDS responses sent', labelNames: ['type', 'mode'], registers });
    this.connected = new Gauge({ name: 'nodemesh_xds_connected_clients', help: 'Open ADS streams', labelNames: ['mode'], registers });
    this.acks = new Counter({ name: 'nodemesh_xds_acks_total', help: 'xDS responses ACKed', labelNames: ['type'], registers });
    this.nacks = new Counter({ name: 'nodemesh_xds_nacks_total', help: 'xDS responses NACKed (error_detail set)', labelNames: ['type'], registers });
    this.configErrors = new Counter({
      name: 'nodemesh_config_errors_total',
      help: 'Config documents or files rejected',
      labelNames: ['reason'],
      registers,
    });
    this.objects = new Gauge({ name: 'nodemesh_config_objects', help: 'Objects in the store', labelNames: ['kind'], registers });
    this.conflicts = new Counter({
      name: 'nodemesh_config_conflicts_total',
      help: "Config conflicts found: a Service asking for another's clusterIP:port (vip), a pod giving another's IP (pod-ip), one kind/namespace/name in two sources (duplicate); the older object wins",
      labelNames: ['kind'],
      registers,
    });
    this.openConflicts = new Gauge({ name: 'nodemesh_config_conflicts_open', help: 'Config conflicts in the current config', labelNames: ['kind'], registers });
    this.resources = new Gauge({ name: 'nodemesh_xds_resources', help: 'Shared xDS resources in the current snapshot', labelNames: ['type'], registers });
    this.snapshots = new Counter({ name: 'nodemesh_xds_snapshots_total', help: 'Snapshots computed from store changes', registers });
    this.destinationRules = new Gauge({
      name: 'nodemesh_destination_rules',
      help: 'DestinationRules by state: applied to a Service port, or unmatched (no Service has the host; see /debug/config destinationRules)',
      labelNames: ['state'],
      registers,
    });
    for (const state of ['applied', 'unmatched']) this.destinationRules.set({ state }, 0);
    this.translateSeconds = new Histogram({
      name: 'nodemesh_xds_translate_seconds',
      help: 'Time to turn the config into xDS resources, per snapshot',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.translatedPieces = new Counter({
      name: 'nodemesh_xds_translate_pieces_total',
      help: "Pieces of a snapshot encoded anew (built) or reused because their inputs did not change (reused)",
      labelNames: ['result'],
      registers,
    });
    this.responseBytes = new Histogram({
      name: 'nodemesh_xds_response_bytes',
      help: 'Resource bytes in each xDS response sent',
      labelNames: ['mode'],
      buckets: [1024, 16384, 65536, 262144, 1048576, 2097152, 4194304],
      registers,
    });
    this.withheld = new Counter({
      name: 'nodemesh_xds_withheld_total',
      help: 'Resources (or state-of-the-world responses) not sent because they exceed the xDS message limit',
      labelNames: ['type'],
      registers,
    });
    this.refusedNames = new Counter({ name: 'nodemesh_xds_refused_names_total', help: 'Resource names a stream subscribed to beyond its bound, not served', registers });
    for (const mode of ['sotw', 'delta']) this.connected.set({ mode }, 0);
    for (const reason of ['syntax', 'invalid', 'duplicate']) this.configErrors.inc({ reason }, 0);
    for (const kind of CONFLICT_KINDS) {
      this.conflicts.inc({ kind }, 0);
      this.openConflicts.set({ kind }, 0);
    }
  }
}
