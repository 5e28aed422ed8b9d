// The agent's ADS client: one stream (delta or state of the world), ACK/NACK, reconnect with jittered backoff.

import * as grpc from '@grpc/grpc-js';
import { channelCredentials } from './channel-credentials';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger';
import { decodeResource, routeTablesOf, XdsResourceError, type AgentResource, type ResourceChange } from './agent-resources';
import {
  adsServiceDefinition,
  toStruct,
  type AnyMessage,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type XdsNode,
} from './protos';
import { intern } from './decode-util';
import { HeldSet, sameHeld, type Received } from './held-set';
import { XDS_MAX_MESSAGE_BYTES, XDS_MORE_FOLLOWS } from './limits';
import { CDS, EDS, LDS, NODE_NAME_METADATA, RDS, typeShortName } from './resource-types';

export type XdsMode = 'delta' | 'sotw';

/**
 * The last accepted config in a form that outlives the process: each type's resources as the control plane
 * sent them (Any bytes) with their versions, for the node it was sent to.
 */
export interface XdsSnapshot {
  node: string;
  savedAt: string;
  types: { typeUrl: string; versionInfo: string; resources: SavedResource[] }[];
}

/**
 * A resource of a snapshot: its bytes (`any`), or, given to `save`, only the handle of where the store already
 * has them (`saved`, from the last `load` or `save`), so the client need not keep them in memory.
 */
export interface SavedResource {
  name: string;
  version: string;
  any?: AnyMessage;
  saved?: number;
}

/**
 * Where snapshots live (the agent's state dir). `load` returns null when there is none; its resources come with
 * their bytes and, when the store can copy them into a later save without being given them again, a handle.
 * `save` returns each resource's handle in what it saved (per type, in order).
 */
export interface XdsSnapshotStore {
  load(): XdsSnapshot | null;
  save(snapshot: XdsSnapshot): number[][];
  close?(): void;
}

/** Receives validated resource sets. Called on the event loop; never called after close(). */
export interface XdsSink {
  /**
   * The complete current set of resources of one type (name -> decoded). `all()` builds it again later (the
   * client holds the decoded forms compactly: a sink that keeps `resources` keeps a second copy of the wrappers).
   */
  apply(typeUrl: string, resources: Map<string, AgentResource>, all: () => Map<string, AgentResource>): void;
  /**
   * What changed in a type since it was last handed over (optional): once a type has been applied whole, its
   * later changes come here, so a one-Service change costs the sink one Service, not the cluster's size.
   * `all()` builds the whole current set, for a sink that needs it.
   */
  update?(typeUrl: string, changes: ResourceChange[], all: () => Map<string, AgentResource>): void;
}

export interface XdsClientOptions {
  /** `host:port` or `unix:///path` */
  address: string;
  node: string;
  mode: XdsMode;
  log: Logger;
  registry: Registry;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * TLS to the control plane (its 15012): the server verified against `rootFile` (the mesh root), and the
   * node's credential (`tokenFile`, re-read for every stream: projected tokens rotate) sent as a bearer token.
   */
  tls?: { rootFile: string; tokenFile?: string; serverName?: string };
  /** The largest xDS message taken (XDS_MAX_MESSAGE_BYTES): at least the control plane's own limit. */
  maxMessageBytes?: number;
  /** Called each time the stream comes up (the first response of a stream); never after close(). */
  onConnected?: () => void;
  /**
   * Persists every accepted config and, at start, applies the saved one before the control plane answers, so
   * an agent restarted while the control plane is down routes (and enforces policy) by the last config.
   */
  store?: XdsSnapshotStore;
}

interface TypeState {
  /** Accepted resources (last good): survive NACKs and disconnects. */
  resources: HeldSet;
  /** SotW: version_info of the last accepted response. */
  versionInfo: string;
  /** Names subscribed explicitly; null = wildcard. */
  names: string[] | null;
  lastNack: string | null;
  /** Names changed since the sink was last given this type, with what the sink had for each (undefined: none). */
  pending: Map<string, AgentResource | undefined>;
  /** The whole set must go to the sink (state of the world, a restore, never handed yet). */
  whole: boolean;
}

type Stream = grpc.ClientDuplexStream<unknown, unknown>;

const WILDCARD_TYPES = [CDS, LDS];
/** How long after a complete config's last burst it is saved. */
const SAVE_DELAY_MS = 200;
/** The longest an incomplete config waits to be saved (scheduleSave). */
const SAVE_INCOMPLETE_WAIT_MS = 5_000;
/** Types subscribed by name, following what another type's accepted resources reference. */
const FOLLOWING_TYPES = [EDS, RDS];

export class XdsClient {
  private readonly client: grpc.Client;
  private stream: Stream | null = null;
  private readonly types = new Map<string, TypeState>();
  private closed = false;
  private connected = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastError: string | null = null;
  /** Types that have had at least one accepted response (any stream), or came from the saved snapshot. */
  private readonly received = new Set<string>();
  /** Types accepted from the control plane by this process (not only restored from the snapshot). */
  private readonly live = new Set<string>();
  private restoredFrom: string | null = null;
  private restoring = false;
  private saveTimer: NodeJS.Timeout | null = null;
  /** When the pending save is due (ms since the epoch). */
  private saveDue = 0;
  private dirty = false;
  private saving = true;
  private readonly pendingCommits = new Set<string>();
  /** Types whose last response said more of the set follows (delta, split under the message limit). */
  private readonly partial = new Set<string>();
  private commitTimer: NodeJS.Immediate | null = null;
  private readonly m: {
    connected: Gauge;
    applied: Counter<'type'>;
    nacks: Counter<'type'>;
    reconnects: Counter;
    saves: Counter;
  };

  constructor(
    private readonly opts: XdsClientOptions,
    private readonly sink: XdsSink,
  ) {
    const Ctor = grpc.makeGenericClientConstructor(adsServiceDefinition(), 'AggregatedDiscoveryService');
    const { creds, options } = channelCredentials(opts.tls);
    this.client = new Ctor(opts.address, creds, {
      ...options,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': opts.initialBackoffMs ?? 200,
      'grpc.max_reconnect_backoff_ms': opts.maxBackoffMs ?? 5_000,
      // Explicit, so it is the bound the control plane packs responses under (xds/limits.ts).
      'grpc.max_receive_message_length': opts.maxMessageBytes ?? XDS_MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': opts.maxMessageBytes ?? XDS_MAX_MESSAGE_BYTES,
    });
    for (const t of [CDS, EDS, LDS, RDS]) {
      this.types.set(t, { resources: new HeldSet(), versionInfo: '', names: WILDCARD_TYPES.includes(t) ? null : [], lastNack: null, pending: new Map(), whole: true });
    }
    const registers = [opts.registry];
    this.m = {
      connected: new Gauge({ name: 'nodemesh_xds_connected', help: '1 while the ADS stream to the control plane is up', registers }),
      applied: new Counter({ name: 'nodemesh_xds_updates_applied_total', help: 'xDS responses accepted (ACKed) and applied', labelNames: ['type'], registers }),
      nacks: new Counter({ name: 'nodemesh_xds_nacks_sent_total', help: 'xDS responses rejected (NACKed); the previous config stays', labelNames: ['type'], registers }),
      reconnects: new Counter({ name: 'nodemesh_xds_reconnects_total', help: 'ADS stream (re)connect attempts', registers }),
      saves: new Counter({ name: 'nodemesh_xds_config_saves_total', help: 'Accepted xDS configs written to the state dir (each rewrites the saved config)', registers }),
    };
  }

  start(): void {
    this.restore();
    this.connect();
  }

  close(): void {
    this.flush();
    this.closed = true;
    this.opts.store?.close?.();
    if (this.timer) clearTimeout(this.timer);
    if (this.commitTimer) clearImmediate(this.commitTimer);
    this.stream?.cancel();
    this.stream = null;
    this.client.close();
    this.m.connected.set(0);
  }

  /**
   * True once the first complete config arrived: clusters, listeners, the endpoints of every cluster and the
   * route table of every listener. Until then the agent would route by an empty config, so it reports not ready.
   */
  synced(): boolean {
    if (!this.received.has(CDS) || !this.received.has(LDS) || this.partial.size > 0) return false;
    return FOLLOWING_TYPES.every((t) => {
      const st = this.types.get(t)!;
      return (st.names ?? []).every((n) => st.resources.has(n));
    });
  }

  /** Where the config in use came from: the control plane, the snapshot saved by an earlier run, or nowhere yet. */
  configSource(): 'control-plane' | 'saved' | 'none' {
    if (this.live.has(CDS) && this.live.has(LDS)) return 'control-plane';
    return this.restoredFrom !== null ? 'saved' : 'none';
  }

  /** `summary()` with every resource's version, and where the saved config came from: for `/config_dump`. */
  status(): Record<string, unknown> {
    const resources: Record<string, Record<string, string>> = {};
    for (const [t, st] of this.types) resources[typeShortName(t)] = Object.fromEntries(st.resources.versions());
    const { counts: _counts, ...summary } = this.summary();
    return { ...summary, savedConfigFrom: this.restoredFrom, resources };
  }

  /** The stream's state without per-resource versions: what a periodic report needs, at any config size. */
  summary(): Record<string, unknown> {
    const perType = <T>(f: (st: TypeState) => T): Record<string, T> => Object.fromEntries([...this.types].map(([t, st]) => [typeShortName(t), f(st)]));
    return {
      address: this.opts.address,
      mode: this.opts.mode,
      connected: this.connected,
      synced: this.synced(),
      configSource: this.configSource(),
      lastError: this.lastError,
      versions: perType((st) => st.versionInfo),
      lastNack: perType((st) => st.lastNack),
      counts: perType((st) => st.resources.size),
    };
  }

  private node(): XdsNode {
    return {
      id: `nodemesh-agent~${this.opts.node}`,
      cluster: 'nodemesh',
      metadata: toStruct({ [NODE_NAME_METADATA]: this.opts.node }),
      user_agent_name: 'nodemesh-agent',
    };
  }

  /**
   * Applies the saved snapshot, decoded and validated exactly like a response; anything wrong with it (another
   * node's, unreadable, a resource this build rejects, incomplete) and it is ignored: the agent then waits for
   * the control plane as on a first start.
   */
  private restore(): void {
    const store = this.opts.store;
    if (!store) return;
    let snap: XdsSnapshot | null;
    try {
      snap = store.load();
    } catch (err) {
      this.opts.log.warn({ err }, 'ignoring the saved xDS config: it cannot be read');
      return;
    }
    if (!snap) return;
    if (snap.node !== this.opts.node) {
      this.opts.log.warn({ saved: snap.node, node: this.opts.node }, 'ignoring the saved xDS config: it was sent to another node');
      return;
    }
    const decoded = new Map<string, { versionInfo: string; resources: HeldSet }>();
    for (const t of snap.types) {
      if (!this.types.has(t.typeUrl)) continue;
      const d = t.resources.every((r): r is SavedResource & { any: AnyMessage } => r.any !== undefined) ? this.decodeAll(t.typeUrl, t.resources) : 'a resource without its bytes';
      if (typeof d === 'string') {
        this.opts.log.warn({ error: d }, 'ignoring the saved xDS config: this agent rejects part of it; waiting for the control plane');
        return;
      }
      decoded.set(t.typeUrl, { versionInfo: t.versionInfo, resources: HeldSet.of(d) });
    }
    if (!decoded.has(CDS) || !decoded.has(LDS)) {
      this.opts.log.warn('ignoring the saved xDS config: it lacks clusters or listeners');
      return;
    }
    this.restoring = true;
    try {
      for (const [t, d] of decoded) {
        const st = this.types.get(t)!;
        st.resources = d.resources;
        st.versionInfo = d.versionInfo;
        st.whole = true;
      }
      // endpoints and route tables first: committing clusters and listeners keeps those they name
      for (const t of [EDS, RDS, CDS, LDS]) if (decoded.has(t)) this.commit(t);
    } finally {
      this.restoring = false;
    }
    this.restoredFrom = snap.savedAt;
    this.opts.log.info({ savedAt: snap.savedAt, resources: [...decoded.values()].reduce((n, d) => n + d.resources.size, 0) }, 'applied the saved xDS config; the control plane will send what changed');
  }

  /** The snapshot to save, and per type what records where the store put each resource. */
  private snapshot(): { snap: XdsSnapshot; takes: ((handles: number[]) => void)[] } {
    const takes: ((handles: number[]) => void)[] = [];
    const snap: XdsSnapshot = {
      node: this.opts.node,
      savedAt: new Date().toISOString(),
      types: [...this.types].map(([typeUrl, st]) => {
        const { resources, take } = st.resources.forSave();
        takes.push(take);
        return { typeUrl, versionInfo: st.versionInfo, resources };
      }),
    };
    return { snap, takes };
  }

  /** Whether a resource's bytes must be held until the next save. */
  private keepsBytes(): boolean {
    return this.opts.store !== undefined && this.saving;
  }

  /** From now on nothing is saved: another agent (a successor) owns the saved config. */
  stopSaving(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.dirty = false;
    this.saving = false;
    for (const st of this.types.values()) st.resources.dropBytes();
  }

  /** Saves the accepted config now if it changed since the last save (shutdown, handover). */
  flush(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (!this.dirty || !this.opts.store || !this.saving || this.closed) return;
    this.dirty = false;
    try {
      const { snap, takes } = this.snapshot();
      const handles = this.opts.store.save(snap);
      this.m.saves.inc();
      // The store has every resource now: the bytes held for it can go.
      takes.forEach((take, i) => take(handles[i] ?? []));
    } catch (err) {
      this.dirty = true;
      this.opts.log.error({ err }, 'cannot save the xDS config; a restart without the control plane would wait for it');
    }
  }

  /**
   * A burst of responses (CDS, EDS, LDS of one push) is saved once, SAVE_DELAY_MS after it. While a config is still
   * arriving (part of a split set, or endpoints and route tables its clusters and listeners name), a save would
   * write a config that is about to change: each save rewrites the whole file, and at 10,000 Services a first sync
   * saved 9-13 times, 13-21 % of the agent's CPU in it. So an incomplete config waits until it is whole, or at
   * most SAVE_INCOMPLETE_WAIT_MS (one that never completes is saved all the same).
   */
  private scheduleSave(): void {
    if (!this.opts.store || !this.saving || this.restoring) return;
    this.dirty = true;
    const due = Date.now() + (this.synced() ? SAVE_DELAY_MS : SAVE_INCOMPLETE_WAIT_MS);
    if (this.saveTimer) {
      if (due >= this.saveDue) return;
      clearTimeout(this.saveTimer);
    }
    this.saveDue = due;
    this.saveTimer = setTimeout(() => this.flush(), due - Date.now());
    this.saveTimer.unref();
  }

  private connect(): void {
    if (this.closed) return;
    this.m.reconnects.inc();
    const method = this.opts.mode === 'delta' ? 'DeltaAggregatedResources' : 'StreamAggregatedResources';
    const stream = (this.client as unknown as Record<string, () => Stream>)[method]!.call(this.client);
    this.stream = stream;
    stream.on('data', (msg: unknown) => {
      if (stream !== this.stream) return;
      if (!this.connected) {
        this.connected = true;
        this.attempt = 0;
        this.lastError = null;
        this.m.connected.set(1);
        this.opts.log.info({ address: this.opts.address, mode: this.opts.mode }, 'xDS stream up');
        this.opts.onConnected?.();
      }
      if (this.opts.mode === 'delta') this.onDelta(msg as DeltaDiscoveryResponse);
      else this.onSotw(msg as DiscoveryResponse);
    });
    stream.on('error', (err: grpc.ServiceError) => this.lost(stream, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    stream.on('end', () => this.lost(stream, 'stream ended by the control plane'));
    // Subscribe: CDS and LDS wildcard first; EDS names follow from the clusters, RDS names from the listeners.
    for (const t of [CDS, LDS, EDS, RDS]) this.subscribe(t);
  }

  private lost(stream: Stream, why: string): void {
    if (stream !== this.stream || this.closed) return;
    this.stream = null;
    stream.cancel();
    // The rest of a split set will not come on this stream; the next one starts over from what is held.
    this.partial.clear();
    if (this.connected) this.opts.log.warn({ address: this.opts.address, why }, 'xDS stream lost; keeping the last good config');
    this.connected = false;
    this.lastError = why;
    this.m.connected.set(0);
    // Exponential backoff with full jitter: many agents must not reconnect in lockstep.
    const base = this.opts.initialBackoffMs ?? 200;
    const cap = this.opts.maxBackoffMs ?? 5_000;
    const delay = Math.random() * Math.min(cap, base * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  /** Initial (re)subscription of a type on a new stream. */
  private subscribe(typeUrl: string): void {
    const st = this.types.get(typeUrl)!;
    // An empty name list would mean "wildcard": ask only once clusters (listeners) name what to watch.
    if (FOLLOWING_TYPES.includes(typeUrl) && (st.names ?? []).length === 0) return;
    if (this.opts.mode === 'delta') {
      const req: DeltaDiscoveryRequest = {
        type_url: typeUrl,
        resource_names_subscribe: st.names ?? [],
        resource_names_unsubscribe: [],
        // a reconnect says what it already holds, so the server sends only what changed
        initial_resource_versions: Object.fromEntries(st.resources.versions()),
        response_nonce: '',
      };
      req.node = this.node();
      this.send(req);
    } else {
      this.send({ version_info: st.versionInfo, node: this.node(), resource_names: st.names ?? [], type_url: typeUrl, response_nonce: '' } satisfies DiscoveryRequest);
    }
  }

  private send(req: DiscoveryRequest | DeltaDiscoveryRequest): void {
    this.stream?.write(req);
  }

  /** Decodes every resource or none: one bad resource rejects the whole response (xDS semantics). */
  private decodeAll(typeUrl: string, items: { name?: string; version: string; any: AnyMessage; saved?: number }[]): Received[] | string {
    const out: Received[] = [];
    const keep = this.keepsBytes();
    for (const it of items) {
      try {
        const { name, resource } = decodeResource(typeUrl, it.any);
        // Bytes the store has (a handle) or that nobody will save are not kept: at 10,000 Services they are
        // ~23 MB, needed only to write the saved config.
        out.push({ name: intern(it.name ?? name), version: it.version, decoded: resource, any: it.saved === undefined && keep ? it.any : undefined, saved: it.saved });
      } catch (e) {
        return e instanceof XdsResourceError ? e.message : `${typeShortName(typeUrl)}: ${(e as Error).message}`;
      }
    }
    return out;
  }

  private onSotw(res: DiscoveryResponse): void {
    const st = this.types.get(res.type_url);
    if (!st) return this.nack(res.type_url, res.nonce, `unsupported type ${res.type_url}`);
    const decoded = this.decodeAll(res.type_url, res.resources.map((any) => ({ version: res.version_info, any })));
    if (typeof decoded === 'string') return this.nack(res.type_url, res.nonce, decoded);
    st.resources = HeldSet.of(decoded);
    st.versionInfo = res.version_info;
    st.whole = true;
    this.live.add(res.type_url);
    this.commitSoon(res.type_url);
    this.send({ version_info: res.version_info, resource_names: st.names ?? [], type_url: res.type_url, response_nonce: res.nonce });
  }

  private onDelta(res: DeltaDiscoveryResponse): void {
    const st = this.types.get(res.type_url);
    if (!st) return this.nack(res.type_url, res.nonce, `unsupported type ${res.type_url}`);
    const decoded = this.decodeAll(res.type_url, res.resources.map((r) => ({ name: r.name, version: r.version, any: r.resource })));
    if (typeof decoded === 'string') return this.nack(res.type_url, res.nonce, decoded);
    // In place: everything was decoded and checked above, so nothing is half-applied.
    for (const name of res.removed_resources) {
      const had = st.resources.get(name);
      if (!had) continue;
      if (!st.pending.has(name)) st.pending.set(name, had);
      st.resources.delete(name);
    }
    for (const r of decoded) {
      if (!st.pending.has(r.name)) st.pending.set(r.name, st.resources.get(r.name));
      st.resources.set(r);
    }
    // A split set: the type is complete only once its last part arrived (xds/limits.ts).
    const more = res.system_version_info.endsWith(XDS_MORE_FOLLOWS);
    if (more) this.partial.add(res.type_url);
    else this.partial.delete(res.type_url);
    st.versionInfo = more ? res.system_version_info.slice(0, -XDS_MORE_FOLLOWS.length) : res.system_version_info;
    this.live.add(res.type_url);
    this.commitSoon(res.type_url);
    this.send({ type_url: res.type_url, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: res.nonce });
  }

  private nack(typeUrl: string, nonce: string, message: string): void {
    const st = this.types.get(typeUrl);
    if (st) st.lastNack = message;
    this.m.nacks.inc({ type: typeShortName(typeUrl) });
    this.opts.log.warn({ type: typeShortName(typeUrl), nonce, error: message }, 'rejecting xDS update (NACK); keeping the previous config');
    const error_detail = { code: grpc.status.INVALID_ARGUMENT, message };
    if (this.opts.mode === 'delta') {
      this.send({ type_url: typeUrl, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: nonce, error_detail });
    } else {
      // SotW NACK: the version we still run, the nonce we reject.
      this.send({ version_info: st?.versionInfo ?? '', resource_names: st?.names ?? [], type_url: typeUrl, response_nonce: nonce, error_detail });
    }
  }

  /**
   * Commits `typeUrl` once the responses already received are processed: a large config comes in many
   * responses (packed under the message limit), and handing the whole set to the sink after each would cost
   * responses x resources. Endpoints and route tables before clusters and listeners, as on restore.
   */
  private commitSoon(typeUrl: string): void {
    this.pendingCommits.add(typeUrl);
    if (this.commitTimer) return;
    this.commitTimer = setImmediate(() => {
      this.commitTimer = null;
      if (this.closed) return;
      const due = [EDS, RDS, CDS, LDS].filter((t) => this.pendingCommits.has(t));
      this.pendingCommits.clear();
      for (const t of due) this.commit(t);
    });
  }

  /** Hands the accepted set to the sink and follows the named subscriptions: EDS after CDS, RDS after LDS. */
  private commit(typeUrl: string): void {
    const st = this.types.get(typeUrl)!;
    st.lastNack = null;
    this.received.add(typeUrl);
    if (!this.restoring) this.m.applied.inc({ type: typeShortName(typeUrl) });
    this.handOver(typeUrl, st);
    if (typeUrl === CDS) {
      const names: string[] = [];
      for (const [, d] of st.resources.decoded()) if (d.kind === 'cluster' && d.eds) names.push(d.cluster.name);
      this.follow(EDS, names);
    } else if (typeUrl === LDS) {
      const names: string[] = [];
      for (const [, d] of st.resources.decoded()) names.push(...routeTablesOf(d));
      this.follow(RDS, names);
    }
    this.scheduleSave();
  }

  /** Gives the sink the type: what changed since last time when it takes that, else the whole set. */
  private handOver(typeUrl: string, st: TypeState): void {
    if (st.whole || !this.sink.update) {
      st.whole = false;
      st.pending.clear();
      this.sink.apply(typeUrl, new Map(st.resources.decoded()), () => new Map(st.resources.decoded()));
      return;
    }
    const changes: ResourceChange[] = [];
    for (const [name, before] of st.pending) {
      const after = st.resources.get(name);
      if (!sameHeld(before, after)) changes.push({ name, before, after });
    }
    st.pending.clear();
    // Called even when nothing changed (the empty last part of a split set): the sink hears of every commit.
    this.sink.update(typeUrl, changes, () => new Map(st.resources.decoded()));
  }

  /** Subscribes `typeUrl` to exactly `names`; what is no longer named is dropped and the sink told at once. */
  private follow(typeUrl: string, names: string[]): void {
    const st = this.types.get(typeUrl)!;
    const want = [...new Set(names)].sort();
    const have = st.names ?? [];
    if (want.length === have.length && want.every((n, i) => n === have[i])) return;
    // Sets: at 10,000 Services both lists hold tens of thousands of names.
    const wanted = new Set(want);
    const had = new Set(have);
    const added = want.filter((n) => !had.has(n));
    const removed = have.filter((n) => !wanted.has(n));
    st.names = want;
    if (removed.length) {
      for (const n of removed) {
        const had = st.resources.get(n);
        if (!had) continue;
        if (!st.pending.has(n)) st.pending.set(n, had);
        st.resources.delete(n);
      }
      this.handOver(typeUrl, st);
    }
    if (this.opts.mode === 'delta') {
      this.send({ type_url: typeUrl, resource_names_subscribe: added, resource_names_unsubscribe: removed, initial_resource_versions: {}, response_nonce: '' });
    } else {
      this.send({ version_info: st.versionInfo, resource_names: want, type_url: typeUrl, response_nonce: '' });
    }
  }
}
