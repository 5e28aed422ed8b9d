// Shared, frozen parts of decoded resources: one instance of each distinct value that many resources repeat,
// found through a bounded table keyed on the part's JSON form. Route tables share their match lists, path
// matchers, sources, policies, header mutations and rule routes (decode-routes.ts); clusters their traffic
// policies (decode-cluster-policy.ts).
//
// At 10,000 Services most tables are the control plane's default table: one route, prefix "/", one backend.
// Decoded one by one, each has its own copy of the same match, path, source and empty lists (about 60% of a
// table's heap). One HTTPRoute rule also appears in the table of every port its parentRefs reach. Decoded
// tables are read-only for every reader (state/routes.ts): freezing the parts turns a write into a
// TypeError, instead of a change that every table sharing the part would see.

import { deepFreeze } from '../util/deep-freeze';

/** Most distinct parts shared at once, and most characters of their keys; past either the table starts over. */
const CANON_MAX = 1024;
const KEY_CHARS_MAX = 128 * 1024;
/** A part whose JSON form is longer than this is kept but not shared: its key would cost more than it saves. */
const KEY_MAX = 2048;

/** The one empty list of every decoded table (header and query matches, header mutations). */
export const EMPTY: readonly never[] = Object.freeze([]);

/** `items`, or EMPTY when there are none. */
export function listOrEmpty<T>(items: T[]): T[] {
  return items.length === 0 ? (EMPTY as never[]) : items;
}

/** Shares frozen parts by kind and JSON form; see the header for why. */
export class Canon {
  private readonly byKey = new Map<string, unknown>();
  private keyChars = 0;

  constructor(
    private readonly max = CANON_MAX,
    private readonly maxKeyChars = KEY_CHARS_MAX,
  ) {}

  /**
   * The shared instance equal to `part` (deep-frozen), or `part` itself frozen when it is the first of its
   * form. `kind` keeps parts of different types apart when their JSON forms are alike.
   *
   * Equal JSON is equal for every reader: the router and layers read strings, numbers and booleans (never
   * -0, NaN or an own property set to undefined, which JSON would blur), and /config_dump is that JSON.
   */
  share<T extends object>(kind: string, part: T): T {
    const json = JSON.stringify(part);
    if (json.length > KEY_MAX) return deepFreeze(part);
    const key = `${kind}:${json}`;
    const had = this.byKey.get(key);
    if (had !== undefined) return had as T;
    if (this.byKey.size >= this.max || this.keyChars + key.length > this.maxKeyChars) this.clear();
    deepFreeze(part);
    this.byKey.set(key, part);
    this.keyChars += key.length;
    return part;
  }

  /** Lets go of every part (the tables that share them keep them). */
  clear(): void {
    this.byKey.clear();
    this.keyChars = 0;
  }

  /** Distinct parts held now, and the characters of their keys (tests). */
  size(): { parts: number; keyChars: number } {
    return { parts: this.byKey.size, keyChars: this.keyChars };
  }
}
