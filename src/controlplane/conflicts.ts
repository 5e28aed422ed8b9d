// Config conflicts (a Service taking another's clusterIP:port, a pod giving another's IP, one name in two sources):
// each reported once with both locations when it appears and when it is gone, counted, and listed for /debug/config.

import type { Logger } from '../telemetry/logger';
import type { ControlPlaneMetrics } from './metrics';
import type { PodIpConflict, VipConflict } from './model';
import type { StoredObject } from './objects';
import type { DuplicateObject, ObjectStore } from './store';

export const CONFLICT_KINDS = ['vip', 'pod-ip', 'duplicate'] as const;
export type ConflictKind = (typeof CONFLICT_KINDS)[number];

/** What one rebuild found. */
export interface Conflicts {
  vip: VipConflict[];
  podIp: PodIpConflict[];
  duplicates: DuplicateObject[];
}

/** One conflict as /debug/config shows it: what happened, who won, and where both are. */
export interface ConflictReport {
  kind: ConflictKind;
  message: string;
  kept: { object: string; at: string };
  refused: { object: string; at: string };
  vip?: string;
  ports?: string[];
  /** The pod IP both claim (kind pod-ip). */
  ip?: string;
}

/**
 * Where an object is, for an operator: `file:line` for files, the object reference (with the uid and
 * creation time that made it the older or the newer) for the API server's.
 */
export function locate(origin: StoredObject['origin'], object?: StoredObject['object']): string {
  if (!origin.source.startsWith('kubernetes:')) return `${origin.file}:${origin.line}`;
  const created = origin.created === undefined ? 'no creationTimestamp' : `created ${new Date(origin.created).toISOString()}`;
  return object ? `${object.kind} ${object.meta.namespace}/${object.meta.name} (uid ${object.meta.uid || 'none'}, ${created})` : origin.file;
}

export class ConflictReporter {
  private reported = new Map<string, ConflictReport>();

  constructor(
    private readonly store: ObjectStore,
    private readonly metrics: ControlPlaneMetrics,
    private readonly log: Logger,
  ) {}

  /** The current conflicts after a rebuild: logs and counts what is new, logs what is gone. */
  update(found: Conflicts): void {
    const now = new Map<string, ConflictReport>();
    for (const c of found.vip) now.set(`vip ${c.vip} ${c.ports.join(',')} ${c.kept} ${c.refused}`, this.vipReport(c));
    for (const c of found.podIp) now.set(`pod-ip ${c.ip} ${c.kept} ${c.refused} ${c.reason}`, this.podIpReport(c));
    for (const d of found.duplicates) now.set(`duplicate ${d.key} ${d.kept.origin.source} ${d.ignored.origin.source}`, this.duplicateReport(d));
    for (const [id, r] of now) {
      if (this.reported.has(id)) continue;
      this.metrics.conflicts.inc({ kind: r.kind });
      this.log.error({ conflict: r.kind, kept: r.kept, refused: r.refused, vip: r.vip, ports: r.ports, ip: r.ip }, `config conflict: ${r.message}`);
    }
    for (const [id, r] of this.reported) {
      if (!now.has(id)) this.log.info({ conflict: r.kind, kept: r.kept, refused: r.refused }, `config conflict resolved: ${r.message}`);
    }
    this.reported = now;
    for (const kind of CONFLICT_KINDS) this.metrics.openConflicts.set({ kind }, [...now.values()].filter((r) => r.kind === kind).length);
  }

  list(): ConflictReport[] {
    return [...this.reported.values()];
  }

  /** `kind namespace/name` and where it is. */
  private place(kind: 'Service' | 'Pod', nsName: string): { object: string; at: string } {
    const s = this.store.get(`${kind}/${nsName}`);
    return { object: `${kind} ${nsName}`, at: s ? locate(s.origin, s.object) : 'unknown' };
  }

  private vipReport(c: VipConflict): ConflictReport {
    const kept = this.place('Service', c.kept);
    const refused = this.place('Service', c.refused);
    return {
      kind: 'vip',
      vip: c.vip,
      ports: c.ports,
      kept,
      refused,
      message:
        `${refused.object} (${refused.at}) asks for ${c.vip} ${c.ports.join(', ')}, which the older ${kept.object} (${kept.at}) has: ` +
        `${c.kept} keeps it, ${c.refused} is served without a VIP until one of them changes`,
    };
  }

  private podIpReport(c: PodIpConflict): ConflictReport {
    const kept = this.place('Pod', c.kept);
    const refused = this.place('Pod', c.refused);
    const why =
      c.reason === 'older'
        ? `${refused.object} (${refused.at}) gives IP ${c.ip}, which the older ${kept.object} (${kept.at}) has`
        : `${refused.object} (${refused.at}), which is being deleted, still gives IP ${c.ip}, which ${kept.object} (${kept.at}) has`;
    return {
      kind: 'pod-ip',
      ip: c.ip,
      kept,
      refused,
      message: `${why}: ${c.kept} keeps it, ${c.refused} is served without an IP (no endpoint, no inbound listener) until one of them changes`,
    };
  }

  private duplicateReport(d: DuplicateObject): ConflictReport {
    const meta = d.kept.object.meta;
    const object = `${d.kept.object.kind} ${meta.namespace}/${meta.name}`;
    const keptAt = locate(d.kept.origin, d.kept.object);
    const ignoredAt = locate(d.ignored.origin, d.ignored.object);
    return {
      kind: 'duplicate',
      kept: { object, at: keptAt },
      refused: { object, at: ignoredAt },
      message: `${object} is defined twice: ${ignoredAt} is ignored, the older ${keptAt} stays in force`,
    };
  }
}
