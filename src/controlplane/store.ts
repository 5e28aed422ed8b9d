// The one object store every source writes into: per-source sets, last-good on invalid input, change events,
// the age of every object, and the oldest of two objects with one name winning.

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

/** Two sources hold an object of the same kind, namespace and name: the older is kept, the other ignored. */
export interface DuplicateObject {
  key: string;
  kept: StoredObject;
  ignored: StoredObject;
}

/** An object with the order in which the running control plane first saw it in its source. */
interface Aged {
  key: string;
  stored: StoredObject;
  seen: number;
}

/**
 * Which of two objects is older. Objects from the API server carry their creationTimestamp: the earlier one,
 * then the smaller uid (as Kubernetes itself would have refused the later one). Objects from files have no
 * reliable age: the one this control plane saw first, and for objects seen in the same read (at start, or
 * two files changed at once) the one first in file order (path, then position in the file). An object with a
 * creation time counts as older than one without.
 */
function compareAge(a: Aged, b: Aged): number {
  const ca = a.stored.origin.created;
  const cb = b.stored.origin.created;
  if (ca !== undefined || cb !== undefined) {
    if (ca === undefined) return 1;
    if (cb === undefined) return -1;
    if (ca !== cb) return ca - cb;
    const ua = a.stored.object.meta.uid;
    const ub = b.stored.object.meta.uid;
    if (ua !== ub) return ua < ub ? -1 : 1;
  }
  return a.seen - b.seen;
}

/**
 * An object whose content did not change keeps the object it had (its origin may have moved), so the model and
 * translation, which compare their inputs by identity first, see one changed object, not a whole file's.
 */
function keepUnchanged(previous: Map<string, StoredObject> | undefined, next: Map<string, StoredObject>): void {
  if (!previous) return;
  for (const [k, v] of next) {
    const old = previous.get(k);
    if (old && old.object !== v.object && JSON.stringify(old.object) === JSON.stringify(v.object)) next.set(k, { ...v, object: old.object });
  }
}

/** Kinds whose document as written stays in the store (see StoredObject.raw). */
const KEEP_RAW: ReadonlySet<Kind> = new Set<Kind>(['HTTPRoute', 'GRPCRoute']);

function withoutRaw(s: StoredObject): StoredObject {
  return s.raw === undefined || KEEP_RAW.has(s.object.kind) ? s : { object: s.object, origin: s.origin };
}

function sameObjects(a: Map<string, StoredObject> | undefined, b: Map<string, StoredObject>): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [k, v] of b) if (a.get(k)?.object !== v.object) return false;
  return true;
}

export class ObjectStore {
  private readonly sources = new Map<string, Map<string, StoredObject>>();
  private readonly sourceIssues = new Map<string, ConfigIssue[]>();
  private readonly listeners = new Set<() => void>();
  /** Per source, when each of its objects was first seen (a sequence number; the file source's notion of age). */
  private readonly seen = new Map<string, Map<string, number>>();
  private nextSeen = 0;
  private merged: Map<string, StoredObject> | undefined;
  private dups: DuplicateObject[] = [];
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
        next.set(key, withoutRaw(d.stored));
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
    keepUnchanged(previous, next);
    const changed = !sameObjects(previous, next);
    this.sources.set(update.source, next);
    this.noteSeen(update.source, next);
    if (changed) this.bump();
    return { changed, issues, keptLastGood, ignored };
  }

  /** Drops a source and all its objects (a deleted file). */
  removeSource(source: string): boolean {
    this.sourceIssues.delete(source);
    const had = this.sources.get(source);
    if (!had) return false;
    this.sources.delete(source);
    this.seen.delete(source);
    if (had.size > 0) this.bump();
    return had.size > 0;
  }

  /**
   * All objects, oldest first (see compareAge); when two sources hold the same kind/namespace/name, the older
   * object is kept and the other listed in `duplicates()`.
   */
  all(): Map<string, StoredObject> {
    if (!this.merged) {
      const aged: Aged[] = [];
      for (const [source, objs] of this.sources) {
        const seen = this.seen.get(source)!;
        for (const [key, stored] of objs) aged.push({ key, stored, seen: seen.get(key)! });
      }
      aged.sort(compareAge);
      const m = new Map<string, StoredObject>();
      const dups: DuplicateObject[] = [];
      for (const { key, stored } of aged) {
        const kept = m.get(key);
        if (kept) dups.push({ key, kept, ignored: stored });
        else m.set(key, stored);
      }
      this.merged = m;
      this.dups = dups;
    }
    return this.merged;
  }

  get(key: string): StoredObject | undefined {
    return this.all().get(key);
  }

  /** Objects ignored because an older one with the same kind/namespace/name is in another source. */
  duplicates(): DuplicateObject[] {
    this.all();
    return this.dups;
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

  /** New objects of a source get the next sequence numbers, in document order; objects that left it lose theirs. */
  private noteSeen(source: string, objects: Map<string, StoredObject>): void {
    const before = this.seen.get(source);
    const now = new Map<string, number>();
    for (const key of objects.keys()) now.set(key, before?.get(key) ?? this.nextSeen++);
    this.seen.set(source, now);
  }

  private bump(): void {
    this.merged = undefined;
    this.generation++;
    for (const fn of this.listeners) fn();
  }
}
