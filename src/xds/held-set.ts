// One xDS type's accepted resources as the agent's ADS client holds them: per name, the decoded form, the version
// the control plane gave it, and where the saved config has its bytes (or the bytes, until saved). Kept as
// parallel tables indexed by a slot per name rather than objects per resource: at 10,000 Services the client
// holds ~39,000 resources, and an object, a version string and the decoded form's wrapper ({kind, …}) each were
// ~5 MB of the agent's heap. The wrapper is made again when asked for; its contents are the ones held.

import type { SavedResource } from './ads-client';
import type { AgentResource } from './agent-resources';
import type { AnyMessage } from './protos';

/** One resource as decoded from a response or the saved config, before it is held. */
export interface Received {
  name: string;
  version: string;
  decoded: AgentResource;
  /** Its bytes, when they must be kept until the next save. */
  any?: AnyMessage;
  /** Where the saved config already has it. */
  saved?: number;
}

/** 16 lowercase hex digits: the versions nodemesh's control plane sends, held as two uint32. */
const HEX16 = /^[0-9a-f]{16}$/;
const NO_HANDLE = -1;

/** How a slot holds its decoded form: the wrapper itself, or only what it wraps. */
const enum Held {
  Whole,
  Cluster,
  EdsCluster,
  /** A ClusterLoadAssignment named after its cluster (as every one is): the endpoint list. */
  Endpoints,
  Vip,
  Routes,
}

/** The decoded form of `name` as a slot holds it. */
function pack(name: string, r: AgentResource): [Held, unknown] {
  switch (r.kind) {
    case 'cluster':
      return [r.eds ? Held.EdsCluster : Held.Cluster, r.cluster];
    case 'endpoints':
      return r.cluster === name ? [Held.Endpoints, r.endpoints] : [Held.Whole, r];
    case 'vip':
      return [Held.Vip, r.vip];
    case 'routes':
      return [Held.Routes, r.table];
    default:
      return [Held.Whole, r];
  }
}

function unpack(name: string, how: Held, v: unknown): AgentResource {
  switch (how) {
    case Held.Cluster:
    case Held.EdsCluster:
      return { kind: 'cluster', cluster: v as Extract<AgentResource, { kind: 'cluster' }>['cluster'], eds: how === Held.EdsCluster };
    case Held.Endpoints:
      return { kind: 'endpoints', cluster: name, endpoints: v as Extract<AgentResource, { kind: 'endpoints' }>['endpoints'] };
    case Held.Vip:
      return { kind: 'vip', vip: v as Extract<AgentResource, { kind: 'vip' }>['vip'] };
    case Held.Routes:
      return { kind: 'routes', table: v as Extract<AgentResource, { kind: 'routes' }>['table'] };
    default:
      return v as AgentResource;
  }
}

/**
 * Whether two decoded forms (as `get` makes them: a new wrapper each time) are the same resource held: the same
 * contents, by identity. Both absent counts as the same.
 */
export function sameHeld(a: AgentResource | undefined, b: AgentResource | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'cluster':
      return a.cluster === (b as typeof a).cluster && a.eds === (b as typeof a).eds;
    case 'endpoints':
      return a.endpoints === (b as typeof a).endpoints && a.cluster === (b as typeof a).cluster;
    case 'vip':
      return a.vip === (b as typeof a).vip;
    case 'routes':
      return a.table === (b as typeof a).table;
    default:
      return false;
  }
}

export class HeldSet {
  private readonly slots = new Map<string, number>();
  /** What a slot holds of its decoded form (`pack`), and how. */
  private payloadAt: unknown[] = [];
  private howAt = new Uint8Array(0);
  /**
   * A version that is not 16 hex digits, by slot. nodemesh's control plane sends none (delta and state of the world
   * alike), so this stays empty unless another control plane does.
   */
  private readonly textAt = new Map<number, string>();
  private hi = new Uint32Array(0);
  private lo = new Uint32Array(0);
  private savedAt = new Int32Array(0);
  /** Bytes held until the store has them, by slot. */
  private readonly bytes = new Map<number, AnyMessage>();
  private readonly free: number[] = [];

  static of(items: Iterable<Received>): HeldSet {
    const s = new HeldSet();
    for (const r of items) s.set(r);
    return s;
  }

  get size(): number {
    return this.slots.size;
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  /** The decoded form of `name` (a new wrapper around what is held: compare with `sameHeld`, not ===). */
  get(name: string): AgentResource | undefined {
    const i = this.slots.get(name);
    return i === undefined ? undefined : unpack(name, this.howAt[i]!, this.payloadAt[i]);
  }

  version(name: string): string | undefined {
    const i = this.slots.get(name);
    return i === undefined ? undefined : this.versionAt(i);
  }

  names(): IterableIterator<string> {
    return this.slots.keys();
  }

  /** Each name with its decoded form. */
  *decoded(): IterableIterator<[string, AgentResource]> {
    for (const [name, i] of this.slots) yield [name, unpack(name, this.howAt[i]!, this.payloadAt[i])];
  }

  /** Each name with its version. */
  *versions(): IterableIterator<[string, string]> {
    for (const [name, i] of this.slots) yield [name, this.versionAt(i)];
  }

  /**
   * Each resource for a save: its bytes while held, else its handle in the saved config. `take(handles)` then
   * records where the store put each one (same order) and lets the held bytes go.
   */
  forSave(): { resources: SavedResource[]; take: (handles: number[]) => void } {
    const order: number[] = [];
    const resources: SavedResource[] = [];
    for (const [name, i] of this.slots) {
      order.push(i);
      const any = this.bytes.get(i);
      const version = this.versionAt(i);
      resources.push(any ? { name, version, any } : { name, version, saved: this.savedAt[i] === NO_HANDLE ? undefined : this.savedAt[i] });
    }
    return {
      resources,
      take: (handles) => {
        // (synchronous with forSave: no slot changed in between)
        order.forEach((i, j) => {
          this.savedAt[i] = handles[j] ?? NO_HANDLE;
          this.bytes.delete(i);
        });
      },
    };
  }

  /** Drops every held byte (nothing will be saved any more). */
  dropBytes(): void {
    this.bytes.clear();
  }

  set(r: Received): void {
    let i = this.slots.get(r.name);
    if (i === undefined) {
      i = this.free.pop() ?? this.grow();
      this.slots.set(r.name, i);
    }
    const [how, payload] = pack(r.name, r.decoded);
    this.howAt[i] = how;
    this.payloadAt[i] = payload;
    if (HEX16.test(r.version)) {
      this.hi[i] = parseInt(r.version.slice(0, 8), 16);
      this.lo[i] = parseInt(r.version.slice(8), 16);
      this.textAt.delete(i);
    } else this.textAt.set(i, r.version);
    this.savedAt[i] = r.saved ?? NO_HANDLE;
    if (r.any) this.bytes.set(i, r.any);
    else this.bytes.delete(i);
  }

  delete(name: string): boolean {
    const i = this.slots.get(name);
    if (i === undefined) return false;
    this.slots.delete(name);
    this.payloadAt[i] = undefined;
    this.textAt.delete(i);
    this.savedAt[i] = NO_HANDLE;
    this.bytes.delete(i);
    this.free.push(i);
    return true;
  }

  private versionAt(i: number): string {
    return this.textAt.get(i) ?? this.hi[i]!.toString(16).padStart(8, '0') + this.lo[i]!.toString(16).padStart(8, '0');
  }

  /** A new slot at the end, growing the typed tables by half again when full. */
  private grow(): number {
    const i = this.payloadAt.length;
    this.payloadAt.push(undefined);
    if (i >= this.hi.length) {
      const cap = Math.max(16, Math.ceil(i * 1.5));
      this.hi = grown(this.hi, new Uint32Array(cap));
      this.lo = grown(this.lo, new Uint32Array(cap));
      this.howAt = grown(this.howAt, new Uint8Array(cap));
      this.savedAt = grown(this.savedAt, new Int32Array(cap).fill(NO_HANDLE));
    }
    return i;
  }
}

/** `into` (a larger table, its new slots already as they should start) with `from`'s slots copied in. */
function grown<T extends Uint8Array | Uint32Array | Int32Array>(from: T, into: T): T {
  into.set(from);
  return into;
}
