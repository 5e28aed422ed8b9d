// What translation keeps from one rebuild to the next: each piece's input fingerprint and what was built from
// it, so a rebuild encodes only the pieces whose inputs changed; and what changed between two snapshots.

import { createHash } from 'node:crypto';

interface Entry {
  key: string;
  /** What `same` was: compared by identity (objects) or value (strings, numbers) before fingerprinting. */
  same?: readonly unknown[];
  value: unknown;
  /** The build that last used it; entries no build used are dropped by `sweep`. */
  build: number;
}

/**
 * Per piece (a Service, a pod's filter chains, a node's inbound listener), the value built last time, reused
 * while the piece's inputs are the same. The inputs are given as data and fingerprinted as JSON: a builder
 * must read nothing but what it is handed there, or a change would go unseen. Maps must be given as entries.
 */
export class TranslationMemo {
  private readonly entries = new Map<string, Entry>();
  private readonly texts = new Map<string, { value: unknown; text: string; build: number }>();
  private readonly sections = new Map<string, { same: readonly unknown[]; value: unknown }>();
  /** Id prefixes of the pieces of sections reused in this build. */
  private held: string[] = [];
  private current = 0;
  /** Pieces built (not reused) in the last build, for tests and metrics. */
  built = 0;
  reused = 0;

  /** Starts a build; returns its number (the snapshot's generation). */
  begin(): number {
    this.built = 0;
    this.reused = 0;
    return ++this.current;
  }

  get generation(): number {
    return this.current;
  }

  /**
   * The value built for `id` from the same `inputs` before, or `build()`'s. With `same` (the inputs as
   * immutable objects and primitives, e.g. the store's pod object): when each element is identical (===) to
   * last time's, the value is reused without fingerprinting `inputs`; at 20,000 pods fingerprinting every
   * pod on every change cost more than the change. `inputs` may be a function returning them, called only
   * when `same` does not match.
   */
  once<T>(id: string, inputs: unknown, build: () => T, same?: readonly unknown[]): T {
    const e = this.entries.get(id);
    if (e && same && e.same && e.same.length === same.length && e.same.every((v, i) => v === same[i])) {
      e.build = this.current;
      this.reused++;
      return e.value as T;
    }
    const key = fingerprint(typeof inputs === 'function' ? (inputs as () => unknown)() : inputs);
    if (e && e.key === key) {
      e.build = this.current;
      e.same = same;
      this.reused++;
      return e.value as T;
    }
    const value = build();
    this.entries.set(id, { key, same, value, build: this.current });
    this.built++;
    return value;
  }

  /**
   * A digest of `value` as text (`toText()`), computed again only when `value` is not the object it was last
   * time for `id`: inputs rebuilt each time compare by content, inputs handed out again (cached route tables)
   * cost nothing. The digest, not the text, is kept: at 50,000 Services the texts were 33 MB.
   */
  text(id: string, value: unknown, toText: () => string): string {
    const e = this.texts.get(id);
    if (e && e.value === value) {
      e.build = this.current;
      return e.text;
    }
    // JSON.stringify(undefined) is undefined, whatever the type says
    const text = digest((toText() as string | undefined) ?? 'undefined');
    this.texts.set(id, { value, text, build: this.current });
    return text;
  }

  /**
   * A section made of memoized pieces (ids starting with one of `pieces`), reused whole while `same` is
   * element-wise identical to last time's: its pieces are then not looked at, and `sweep` keeps them.
   */
  section<T>(id: string, same: readonly unknown[], build: () => T, pieces: readonly string[]): T {
    const e = this.sections.get(id);
    if (e && e.same.length === same.length && e.same.every((v, i) => v === same[i])) {
      this.held.push(...pieces);
      return e.value as T;
    }
    const value = build();
    this.sections.set(id, { same, value });
    return value;
  }

  /** Ends a build: forgets pieces it did not use (deleted Services, pods gone). */
  sweep(): void {
    const held = this.held;
    this.held = [];
    for (const [id, e] of this.entries) if (e.build !== this.current && !held.some((p) => id.startsWith(p))) this.entries.delete(id);
    for (const [id, e] of this.texts) if (e.build !== this.current) this.texts.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** A short digest of `inputs` as JSON (Maps and Sets must have been turned into arrays by the caller). */
export function fingerprint(inputs: unknown): string {
  return digest(JSON.stringify(inputs) ?? 'undefined');
}

/** A short digest of a text: what the control plane keeps instead of texts it only compares. */
export function digest(text: string): string {
  return createHash('sha1').update(text).digest('base64');
}

/** Names added or whose version changed, and names gone, per resource type. */
export interface Changes {
  changed: Set<string>;
  removed: Set<string>;
}

export function diffVersions(prev: ReadonlyMap<string, { version: string }> | undefined, next: ReadonlyMap<string, { version: string }>): Changes {
  const changed = new Set<string>();
  const removed = new Set<string>();
  for (const [name, r] of next) if (prev?.get(name)?.version !== r.version) changed.add(name);
  if (prev) for (const name of prev.keys()) if (!next.has(name)) removed.add(name);
  return { changed, removed };
}
