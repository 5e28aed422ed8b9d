// Incremental (delta) ADS stream: per-resource versions, subscribe/unsubscribe, removed_resources, nonces, ACK/NACK.

import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../xds/protos';
import { typeShortName, type XdsTypeUrl } from '../xds/resource-types';
import { AdsStream, Subscription, type StreamContext } from './ads-stream';

interface TypeState {
  sub: Subscription;
  /** name -> version the client has (from initial_resource_versions, then from what was sent). */
  has: Map<string, string>;
  /** Explicitly subscribed names not yet told "does not exist". */
  unannounced: Set<string>;
  lastNonce?: string;
  nacked?: { nonce: string; message: string };
}

export class DeltaStream extends AdsStream<TypeState> {
  constructor(
    ctx: StreamContext,
    private readonly call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
  ) {
    super(ctx, 'delta', call.getPeer());
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    const found = this.typeStateFor(req, () => ({
      sub: new Subscription(),
      has: new Map(Object.entries(req.initial_resource_versions ?? {})),
      unannounced: new Set(),
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
    for (const n of subscribe) {
      if (n === '*') st.sub.wildcard = true;
      else if (!st.sub.names.has(n)) {
        st.sub.names.add(n);
        st.unannounced.add(n);
      }
    }
    for (const n of req.resource_names_unsubscribe ?? []) {
      if (n === '*') st.sub.wildcard = false;
      else st.sub.names.delete(n);
      st.unannounced.delete(n);
      // The client forgets an unsubscribed resource; a later subscribe must send it again.
      if (!st.sub.includes(n)) st.has.delete(n);
    }
    // A first request is always answered, even with nothing, so the client knows its initial state is complete.
    this.send(typeUrl, st, first);
  }

  protected send(typeUrl: XdsTypeUrl, st: TypeState, always: boolean): void {
    const visible = this.visible(typeUrl, st.sub);
    const resources = [...visible.values()].filter((r) => st.has.get(r.name) !== r.version);
    const removed = new Set<string>();
    for (const name of st.has.keys()) if (!visible.has(name)) removed.add(name);
    // Explicitly requested but absent: say so once, so the client need not wait for its does-not-exist timer.
    for (const name of st.unannounced) if (!visible.has(name)) removed.add(name);
    st.unannounced.clear();
    if (resources.length === 0 && removed.size === 0 && !always) return;
    for (const r of resources) st.has.set(r.name, r.version);
    for (const n of removed) st.has.delete(n);
    const nonce = this.nextNonce();
    st.lastNonce = nonce;
    const res: DeltaDiscoveryResponse = {
      system_version_info: this.ctx.view.systemVersion(),
      resources: resources.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      type_url: typeUrl,
      removed_resources: [...removed],
      nonce,
      control_plane: { identifier: this.ctx.controlPlaneId },
    };
    this.ctx.metrics.pushes.inc({ type: typeShortName(typeUrl), mode: 'delta' });
    this.ctx.log.debug(
      { client: this.client?.id, type: typeShortName(typeUrl), nonce, names: resources.map((r) => r.name), removed: res.removed_resources },
      'delta xDS push',
    );
    this.call.write(res);
  }

  protected describeType(st: TypeState): Record<string, unknown> {
    return { wildcard: st.sub.wildcard, names: [...st.sub.names], versions: Object.fromEntries(st.has), lastNonce: st.lastNonce, nacked: st.nacked };
  }
}
