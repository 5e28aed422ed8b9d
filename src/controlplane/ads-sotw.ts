// State-of-the-world ADS stream: per-type subscriptions, version_info + nonce, ACK/NACK, pushes of what changed.
// LDS and CDS responses hold every subscribed resource, so they cannot be split: one over the message limit is
// withheld with an error. EDS and RDS responses may hold any subset, so they are packed under the limit.

import { createHash } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { resourceEntryBytes, XDS_RESPONSE_OVERHEAD_BYTES } from '../xds/limits';
import type { DiscoveryRequest, DiscoveryResponse } from '../xds/protos';
import { CDS, inboundListenerName, LDS, typeShortName, XDS_TYPE_URLS, type XdsTypeUrl } from '../xds/resource-types';
import { AdsStream, Subscription, type StreamContext } from './ads-stream';
import type { XdsResource } from './translate';

interface TypeState {
  sub: Subscription;
  /** Set when the first request for the type had no names (legacy wildcard: later empty lists keep it). */
  legacyWildcard: boolean;
  /** name -> version the client was last sent. */
  sent: Map<string, string>;
  lastNonce?: string;
  lastVersion?: string;
  ackedVersion?: string;
  nacked?: { version: string; message: string };
  /** Set while a complete LDS/CDS response is over the message limit (withheld). */
  withheld?: { version: string; bytes: number };
}

/** LDS and CDS responses must hold every subscribed resource; RDS and EDS may hold only the changed ones. */
function allRequired(typeUrl: XdsTypeUrl): boolean {
  return typeUrl === LDS || typeUrl === CDS;
}

function setVersion(resources: Map<string, XdsResource>): string {
  const h = createHash('sha256');
  for (const name of [...resources.keys()].sort()) h.update(name).update('\0').update(resources.get(name)!.version).update('\0');
  return h.digest('hex').slice(0, 16);
}

export class SotwStream extends AdsStream<TypeState> {
  /** The snapshot generation last pushed from. */
  private at: number;

  constructor(
    ctx: StreamContext,
    private readonly call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
  ) {
    super(ctx, 'sotw', call.getPeer());
    this.at = ctx.view.snapshot().generation;
  }

  onRequest(req: DiscoveryRequest): void {
    const found = this.typeStateFor(req, () => ({ sub: new Subscription(), legacyWildcard: false, sent: new Map() }));
    if (!found) return;
    const { typeUrl, st, first } = found;
    if (req.response_nonce) {
      // A request answering an older response is stale: its ACK/NACK and names are superseded (xDS protocol).
      if (req.response_nonce !== st.lastNonce) return;
      if (req.error_detail) {
        st.nacked = { version: req.version_info, message: req.error_detail.message };
        this.recordNack(typeUrl, req.response_nonce, req.version_info, req.error_detail.message);
      } else {
        st.ackedVersion = req.version_info;
        st.nacked = undefined;
        this.recordAck(typeUrl);
      }
    }
    const changed = this.updateSubscription(st, req.resource_names, first);
    // No nonce: a new or reconnecting client, which must get the full state even if nothing changed.
    if (first || changed || !req.response_nonce) this.send(typeUrl, st, true);
  }

  /** Sends each type whose resources this client sees changed in the new snapshot. */
  override push(): void {
    const snap = this.ctx.view.snapshot();
    if (snap.generation === this.at) return;
    const ch = snap.changes?.since === this.at ? snap.changes : undefined;
    this.at = snap.generation;
    const node = this.client?.node ?? '';
    for (const typeUrl of XDS_TYPE_URLS) {
      const st = this.types.get(typeUrl);
      if (!st) continue;
      if (ch) {
        const c = ch.shared.get(typeUrl);
        const touched = (names: Set<string> | undefined): boolean => {
          if (!names || names.size === 0) return false;
          if (st.sub.wildcard) return true;
          for (const n of names) if (st.sub.names.has(n)) return true;
          return false;
        };
        const own = typeUrl === LDS && (ch.inbound.changed.has(node) || ch.inbound.removed.has(node)) && st.sub.includes(inboundListenerName(node));
        // Nothing this client sees changed: skip the whole-set comparison (the cost of a push at scale).
        if (!own && !touched(c?.changed) && !touched(c?.removed) && !st.withheld) continue;
      }
      this.send(typeUrl, st, false);
    }
  }

  private updateSubscription(st: TypeState, names: string[], first: boolean): boolean {
    const before = `${st.sub.wildcard}|${[...st.sub.names].sort().join(',')}`;
    if (first && names.length === 0) {
      st.legacyWildcard = true;
      st.sub.wildcard = true;
    } else if (names.length === 0) {
      st.sub.wildcard = st.legacyWildcard;
      st.sub.names.clear();
    } else {
      st.legacyWildcard = false;
      st.sub.wildcard = names.includes('*');
      st.sub.names.clear();
      for (const n of names) if (n !== '*' && st.sub.names.size < this.ctx.limits.maxNamesPerType) st.sub.names.add(n);
      if (names.length > this.ctx.limits.maxNamesPerType) this.ctx.metrics.refusedNames.inc(names.length - this.ctx.limits.maxNamesPerType);
    }
    return before !== `${st.sub.wildcard}|${[...st.sub.names].sort().join(',')}`;
  }

  /** Sends the type's state; `full` always answers, otherwise only when something changed for this client. */
  private send(typeUrl: XdsTypeUrl, st: TypeState, full: boolean): void {
    const visible = this.visible(typeUrl, st.sub);
    const version = setVersion(visible);
    let resources: XdsResource[];
    if (full || allRequired(typeUrl)) {
      if (!full && version === st.lastVersion) return;
      resources = [...visible.values()];
    } else {
      resources = [...visible.values()].filter((r) => st.sent.get(r.name) !== r.version);
      // A removed RDS/EDS resource cannot be signalled in SotW: the client drops it with its parent.
      if (resources.length === 0) {
        st.sent = new Map([...visible].map(([n, r]) => [n, r.version]));
        return;
      }
    }
    const sizes = resources.map((r) => resourceEntryBytes(r));
    if (allRequired(typeUrl)) {
      const total = sizes.reduce((a, b) => a + b, 0);
      if (total + XDS_RESPONSE_OVERHEAD_BYTES > this.ctx.limits.maxMessageBytes) {
        this.withhold(typeUrl, st, version, total);
        return;
      }
      st.withheld = undefined;
      this.write(typeUrl, st, version, resources, total);
    } else {
      // Packed under the target: each response is a subset, which EDS and RDS allow.
      let chunk: XdsResource[] = [];
      let bytes = 0;
      resources.forEach((r, i) => {
        if (!this.fits(r, sizes[i]!)) return;
        if (bytes + sizes[i]! > this.ctx.limits.targetBytes && chunk.length > 0) {
          this.write(typeUrl, st, version, chunk, bytes);
          chunk = [];
          bytes = 0;
        }
        chunk.push(r);
        bytes += sizes[i]!;
      });
      if (chunk.length > 0 || full) this.write(typeUrl, st, version, chunk, bytes);
    }
    st.lastVersion = version;
    st.sent = new Map([...visible].map(([n, r]) => [n, r.version]));
  }

  private write(typeUrl: XdsTypeUrl, st: TypeState, version: string, resources: XdsResource[], bytes: number): void {
    const nonce = this.nextNonce();
    st.lastNonce = nonce;
    const res: DiscoveryResponse = {
      version_info: version,
      resources: resources.map((r) => r.any),
      type_url: typeUrl,
      nonce,
      control_plane: { identifier: this.ctx.controlPlaneId },
    };
    this.ctx.metrics.pushes.inc({ type: typeShortName(typeUrl), mode: 'sotw' });
    this.ctx.metrics.responseBytes.observe({ mode: 'sotw' }, bytes);
    if (this.ctx.log.isLevelEnabled('debug')) {
      this.ctx.log.debug({ client: this.client?.id, type: typeShortName(typeUrl), version, nonce, names: resources.map((r) => r.name), bytes }, 'xDS push');
    }
    this.call.write(res);
  }

  /** A complete LDS/CDS set over the limit cannot be sent in SotW (no subsets): the client keeps what it has. */
  private withhold(typeUrl: XdsTypeUrl, st: TypeState, version: string, bytes: number): void {
    this.ctx.metrics.withheld.inc({ type: typeShortName(typeUrl) });
    if (st.withheld?.version !== version) {
      this.ctx.log.error(
        { client: this.client?.id, type: typeShortName(typeUrl), bytes, limit: this.ctx.limits.maxMessageBytes },
        `the ${typeShortName(typeUrl)} state of the world for ${this.client?.id ?? this.peer} is ${bytes} bytes, over the ${this.ctx.limits.maxMessageBytes}-byte message limit, and cannot be split: not sent (the client keeps its previous config). Use delta xDS, subscribe by name, or raise --xds-max-message-bytes on the control plane and the client together`,
      );
    }
    st.withheld = { version, bytes };
  }

  protected describeType(st: TypeState): Record<string, unknown> {
    return {
      wildcard: st.sub.wildcard,
      names: st.sub.names.size <= 100 ? [...st.sub.names] : `${st.sub.names.size} names`,
      sentVersion: st.lastVersion,
      ackedVersion: st.ackedVersion,
      lastNonce: st.lastNonce,
      nacked: st.nacked,
      withheld: st.withheld,
    };
  }
}
