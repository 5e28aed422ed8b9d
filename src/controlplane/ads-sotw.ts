// State-of-the-world ADS stream: per-type subscriptions, version_info + nonce, ACK/NACK, pushes of what changed.

import { createHash } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DiscoveryRequest, DiscoveryResponse } from '../xds/protos';
import { CDS, LDS, typeShortName, type XdsTypeUrl } from '../xds/resource-types';
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
  constructor(
    ctx: StreamContext,
    private readonly call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
  ) {
    super(ctx, 'sotw', call.getPeer());
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
      for (const n of names) if (n !== '*') st.sub.names.add(n);
    }
    return before !== `${st.sub.wildcard}|${[...st.sub.names].sort().join(',')}`;
  }

  /** Sends the type's state; `full` always answers, otherwise only when something changed for this client. */
  protected send(typeUrl: XdsTypeUrl, st: TypeState, full: boolean): void {
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
    const nonce = this.nextNonce();
    st.lastNonce = nonce;
    st.lastVersion = version;
    st.sent = new Map([...visible].map(([n, r]) => [n, r.version]));
    const res: DiscoveryResponse = {
      version_info: version,
      resources: resources.map((r) => r.any),
      type_url: typeUrl,
      nonce,
      control_plane: { identifier: this.ctx.controlPlaneId },
    };
    this.ctx.metrics.pushes.inc({ type: typeShortName(typeUrl), mode: 'sotw' });
    this.ctx.log.debug(
      { client: this.client?.id, type: typeShortName(typeUrl), version, nonce, names: resources.map((r) => r.name) },
      'xDS push',
    );
    this.call.write(res);
  }

  protected describeType(st: TypeState): Record<string, unknown> {
    return {
      wildcard: st.sub.wildcard,
      names: [...st.sub.names],
      sentVersion: st.lastVersion,
      ackedVersion: st.ackedVersion,
      lastNonce: st.lastNonce,
      nacked: st.nacked,
    };
  }
}
