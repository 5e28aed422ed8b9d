// Incremental (delta) ADS stream: per-resource versions, subscribe/unsubscribe, removed_resources, nonces,
// ACK/NACK. A push looks only at the names the snapshot says changed; what is due goes out in responses packed
// under the message limit, and no more are built while the stream's buffer is full.

import type { ServerDuplexStream } from '@grpc/grpc-js';
import { resourceEntryBytes, XDS_MORE_FOLLOWS } from '../xds/limits';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../xds/protos';
import { inboundListenerName, LDS, typeShortName, XDS_TYPE_URLS, type XdsTypeUrl } from '../xds/resource-types';
import { AdsStream, Subscription, type StreamContext } from './ads-stream';
import { resourcesFor, type XdsResource } from './translate';

interface TypeState {
  sub: Subscription;
  /** name -> version the client has (from initial_resource_versions, then from what was sent). */
  has: Map<string, string>;
  /** Explicitly subscribed names not yet told "does not exist". */
  unannounced: Set<string>;
  /** Names to compare with the snapshot on the next pump: subscribed, changed, or gone. */
  dirty: Set<string>;
  /** Compare every name the client has or may see (a first request, or a snapshot the stream did not follow). */
  sweep: boolean;
  /** Answer even if nothing is due (a first request: the client learns its initial state is complete). */
  answer: boolean;
  lastNonce?: string;
  nacked?: { nonce: string; message: string };
  /** The last response sent said more of this type follows. */
  partial?: boolean;
  /** Names refused because the subscription is at its bound. */
  refused: number;
}

export class DeltaStream extends AdsStream<TypeState> {
  /** The snapshot generation the dirty sets account for. */
  private at: number;
  /** The last write found the stream's buffer full: build nothing more until it drains. */
  private blocked = false;

  constructor(
    ctx: StreamContext,
    private readonly call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
  ) {
    super(ctx, 'delta', call.getPeer());
    this.at = ctx.view.snapshot().generation;
    call.on('drain', () => {
      this.blocked = false;
      this.pump();
    });
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    const found = this.typeStateFor(req, () => ({
      sub: new Subscription(),
      has: new Map(Object.entries(req.initial_resource_versions ?? {})),
      unannounced: new Set(),
      dirty: new Set(),
      sweep: true,
      answer: true,
      refused: 0,
    }));
    if (!found) return;
    const { typeUrl, st, first } = found;
    if (req.response_nonce) {
      if (req.error_detail) {
        st.nacked = { nonce: req.response_nonce, message: req.error_detail.message };
        this.recordNack(typeUrl, req.response_nonce, '', req.error_detail.message);
      } else if (req.response_nonce === st.lastNonce) {
        st.nacked = undefined;
        this.recordAck(typeUrl);
      }
    }
    const subscribe = req.resource_names_subscribe ?? [];
    // Legacy wildcard: a first request naming nothing subscribes to everything.
    if (first && subscribe.length === 0) st.sub.wildcard = true;
    let refused = 0;
    for (const n of subscribe) {
      if (n === '*') {
        st.sub.wildcard = true;
        st.sweep = true;
      } else if (!st.sub.names.has(n)) {
        if (st.sub.names.size >= this.ctx.limits.maxNamesPerType) {
          refused++;
          continue;
        }
        st.sub.names.add(n);
        st.unannounced.add(n);
        st.dirty.add(n);
      }
    }
    if (refused > 0) this.refuse(typeUrl, st, refused);
    for (const n of req.resource_names_unsubscribe ?? []) {
      if (n === '*') {
        st.sub.wildcard = false;
        // What the client has and no longer subscribes to is forgotten below or on the sweep.
        st.sweep = true;
      } else st.sub.names.delete(n);
      st.unannounced.delete(n);
      st.dirty.delete(n);
      // The client forgets an unsubscribed resource; a later subscribe must send it again.
      if (!st.sub.includes(n)) st.has.delete(n);
    }
    this.pump();
  }

  /** Takes in what the new snapshot changed (only names this client subscribes to), then sends what is due. */
  override push(): void {
    const snap = this.ctx.view.snapshot();
    if (snap.generation === this.at) return;
    const ch = snap.changes;
    if (ch && ch.since === this.at) {
      const node = this.client?.node ?? '';
      for (const [typeUrl, st] of this.types) {
        const c = ch.shared.get(typeUrl);
        if (c) {
          for (const n of c.changed) if (st.sub.includes(n)) st.dirty.add(n);
          for (const n of c.removed) if (st.sub.includes(n)) st.dirty.add(n);
        }
        if (typeUrl === LDS && (ch.inbound.changed.has(node) || ch.inbound.removed.has(node))) {
          const own = inboundListenerName(node);
          if (st.sub.includes(own)) st.dirty.add(own);
        }
      }
    } else {
      // Missed a snapshot (a failed build in between): compare everything once.
      for (const st of this.types.values()) st.sweep = true;
    }
    this.at = snap.generation;
    this.pump();
  }

  /** Sends what is due, type by type in CDS, EDS, LDS, RDS order, until the stream's buffer is full. */
  private pump(): void {
    for (const typeUrl of XDS_TYPE_URLS) {
      if (this.blocked) return;
      const st = this.types.get(typeUrl);
      if (!st) continue;
      if (st.sweep) {
        st.sweep = false;
        for (const n of st.has.keys()) st.dirty.add(n);
        for (const n of st.sub.names) st.dirty.add(n);
        if (st.sub.wildcard) for (const n of resourcesFor(this.ctx.view.snapshot(), typeUrl, this.scope()).keys()) st.dirty.add(n);
      }
      this.drain(typeUrl, st);
    }
  }

  /** Compares each dirty name with the snapshot; what differs goes out in responses of at most the target size. */
  private drain(typeUrl: XdsTypeUrl, st: TypeState): void {
    const target = this.ctx.limits.targetBytes;
    let resources: XdsResource[] = [];
    let removed: string[] = [];
    let bytes = 0;
    for (const name of st.dirty) {
      const r = st.sub.includes(name) ? this.resource(typeUrl, name) : undefined;
      let b: number;
      if (r) {
        b = resourceEntryBytes(r);
        if (st.has.get(name) === r.version || !this.fits(r, b)) {
          st.dirty.delete(name);
          continue;
        }
      } else if (st.has.has(name) || st.unannounced.has(name)) {
        b = name.length + 8;
      } else {
        st.dirty.delete(name);
        continue;
      }
      if (bytes + b > target && resources.length + removed.length > 0) {
        // More of this type follows (in this pass, or on drain): the client must not take its set as complete.
        this.write(typeUrl, st, resources, removed, bytes, true);
        resources = [];
        removed = [];
        bytes = 0;
        // Full: the rest stays dirty until the stream drains.
        if (this.blocked) return;
      }
      st.dirty.delete(name);
      if (r) {
        resources.push(r);
        st.has.set(name, r.version);
      } else {
        st.has.delete(name);
        st.unannounced.delete(name);
        removed.push(name);
      }
      bytes += b;
    }
    // The last response of a split set says it is the last (one with nothing in it if the rest turned out
    // to be up to date).
    if (resources.length + removed.length > 0 || st.answer || st.partial) this.write(typeUrl, st, resources, removed, bytes, false);
  }

  private write(typeUrl: XdsTypeUrl, st: TypeState, resources: XdsResource[], removed: string[], bytes: number, more: boolean): void {
    st.partial = more;
    const nonce = this.nextNonce();
    st.lastNonce = nonce;
    st.answer = false;
    const res: DeltaDiscoveryResponse = {
      system_version_info: this.ctx.view.systemVersion() + (more ? XDS_MORE_FOLLOWS : ''),
      resources: resources.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      type_url: typeUrl,
      removed_resources: removed,
      nonce,
      control_plane: { identifier: this.ctx.controlPlaneId },
    };
    this.ctx.metrics.pushes.inc({ type: typeShortName(typeUrl), mode: 'delta' });
    this.ctx.metrics.responseBytes.observe({ mode: 'delta' }, bytes);
    if (this.ctx.log.isLevelEnabled('debug')) {
      this.ctx.log.debug({ client: this.client?.id, type: typeShortName(typeUrl), nonce, names: resources.map((r) => r.name), removed, bytes }, 'delta xDS push');
    }
    if (!this.call.write(res)) this.blocked = true;
  }

  private refuse(typeUrl: XdsTypeUrl, st: TypeState, n: number): void {
    this.ctx.metrics.refusedNames.inc(n);
    if (st.refused === 0) {
      this.ctx.log.warn(
        { client: this.client?.id, type: typeShortName(typeUrl), limit: this.ctx.limits.maxNamesPerType },
        `xDS client subscribed to more than ${this.ctx.limits.maxNamesPerType} ${typeShortName(typeUrl)} names; the rest are not served`,
      );
    }
    st.refused += n;
  }

  protected describeType(st: TypeState): Record<string, unknown> {
    return {
      wildcard: st.sub.wildcard,
      names: st.sub.names.size <= 100 ? [...st.sub.names] : `${st.sub.names.size} names`,
      resources: st.has.size,
      versions: st.has.size <= 100 ? Object.fromEntries(st.has) : undefined,
      pending: st.dirty.size,
      lastNonce: st.lastNonce,
      nacked: st.nacked,
      refused: st.refused || undefined,
    };
  }
}
