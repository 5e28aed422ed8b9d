// The one object store every source writes into: per-source sets, last-good on invalid input, change events.

import type { ConfigIssue } from './errors';
import { keyOf, type Kind, type PodObject, type ServiceObject, type StoredObject } from './objects';

/** One document as a source saw it, already validated; what every source hands to the store. */
export type SourceDocument =
  | { status: 'ok'; stored: StoredObject }
  /** `key` is set when the document named itself well enough to find its last good version. */
  | { status: 'invalid'; key?: string; issues: ConfigIssue[] }
  | { status: 'ignored'; kind: string; apiVersion: string; file: string; line: number };

/** The full current content of one source (a file, or one Kubernetes kind). */
export interface SourceUpdate {
  source: string;
  documents: SourceDocument[];
  /** Whole-source failure (YAML syntax): the store keeps everything the source had. */
  fatal?: ConfigIssue[];
}

export interface ApplyResult {
  changed: boolean;
  /** Every problem found in this update, fatal or per document. */
  issues: ConfigIssue[];
  /** Keys of objects whose new version was invalid and whose last good version was kept. */
  keptLastGood: string[];
  ignored: Extract<SourceDocument, { status: 'ignored' }>[];
}

function sameObjects(a: Map<string, StoredObject> | undefined, b: Map<string, StoredObject>): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [k, v] of b) {
    const old = a.get(k);
    if (!old || JSON.stringify(old.object) !== JSON.stringify(v.object)) return false;
  }
  return true;
}

export class ObjectStore {
  private readonly sources = new Map<string, Map<string, StoredObject>>();
  private readonly sourceIssues = new Map<string, ConfigIssue[]>();
  private readonly listeners = new Set<() => void>();
  private merged: Map<string, StoredObject> | undefined;
  /** Bumped on every change of content; part of /debug/config. */
  generation = 0;

  /** Replaces what `update.source` holds, keeping last good versions of objects that are now invalid. */
  apply(update: SourceUpdate): ApplyResult {
    const previous = this.sources.get(update.source);
    const ignored: ApplyResult['ignored'] = [];
    if (update.fatal && update.fatal.length > 0) {
      this.sourceIssues.set(update.source, update.fatal);
      return { changed: false, issues: update.fatal, keptLastGood: previous ? [...previous.keys()] : [], ignored };
    }
    const next = new Map<string, StoredObject>();
    const issues: ConfigIssue[] = [];
    const keptLastGood: string[] = [];
    for (const d of update.documents) {
      if (d.status === 'ok') {
        const key = keyOf(d.stored.object);
        const first = next.get(key);
        if (first) {
          issues.push({
            file: d.stored.origin.file,
            line: d.stored.origin.line,
            field: 'metadata.name',
            message: `duplicate of the object at ${first.origin.file}:${first.origin.line}; this copy is ignored`,
            kind: d.stored.object.kind,
            name: d.stored.object.meta.name,
          });
          continue;
        }
        next.set(key, d.stored);
      } else if (d.status === 'invalid') {
        issues.push(...d.issues);
        const good = d.key ? previous?.get(d.key) : undefined;
        if (d.key && good && !next.has(d.key)) {
          next.set(d.key, good);
          keptLastGood.push(d.key);
        }
      } else {
        ignored.push(d);
      }
    }
    if (issues.length > 0) this.sourceIssues.set(update.source, issues);
    else this.sourceIssues.delete(update.source);
    const changed = !sameObjects(previous, next);
    this.sources.set(update.source, next);
    if (changed) this.bump();
    return { changed, issues, keptLastGood, ignored };
  }

  /** Drops a source and all its objects (a deleted file). */
  removeSource(source: string): boolean {
    this.sourceIssues.delete(source);
    const had = this.sources.get(source);
    if (!had) return false;
    this.sources.delete(source);
    if (had.size > 0) this.bump();
    return had.size > 0;
  }

  /** All objects; when two sources hold the same kind/namespace/name, the older source wins. */
  all(): Map<string, StoredObject> {
    if (!this.merged) {
      const m = new Map<string, StoredObject>();
      for (const objs of this.sources.values()) for (const [k, v] of objs) if (!m.has(k)) m.set(k, v);
      this.merged = m;
    }
    return this.merged;
  }

  list(kind: Kind): StoredObject[] {
    return [...this.all().values()].filter((s) => s.object.kind === kind);
  }

  pods(): PodObject[] {
    return this.list('Pod').map((s) => s.object as PodObject);
  }

  services(): ServiceObject[] {
    return this.list('Service').map((s) => s.object as ServiceObject);
  }

  countsByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.all().values()) out[s.object.kind] = (out[s.object.kind] ?? 0) + 1;
    return out;
  }

  /** Current problems per source (cleared when the source is fixed). */
  issues(): Record<string, ConfigIssue[]> {
    return Object.fromEntries(this.sourceIssues);
  }

  sourceNames(): string[] {
    return [...this.sources.keys()];
  }

  /** `fn` runs synchronously after every content change; returns an unsubscribe function. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private bump(): void {
    this.merged = undefined;
    this.generation++;
    for (const fn of this.listeners) fn();
  }
}
