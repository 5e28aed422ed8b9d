// What both ADS stream flavours share: the client's node identity, nonces, and the snapshot they serve from.

import type { Logger } from '../telemetry/logger';
import { fromStruct, type XdsNode } from '../xds/protos';
import { NODE_NAME_METADATA, typeShortName, type XdsTypeUrl } from '../xds/resource-types';
import type { ControlPlaneMetrics } from './metrics';
import { resourcesFor, type Snapshot, type XdsResource } from './translate';

export interface SnapshotView {
  snapshot(): Snapshot;
  /** Changes whenever the snapshot does (the store generation). */
  systemVersion(): string;
}

export interface StreamContext {
  view: SnapshotView;
  metrics: ControlPlaneMetrics;
  log: Logger;
  controlPlaneId: string;
}

export interface ClientIdentity {
  id: string;
  /** The Kubernetes node the client runs on: metadata NODE_NAME, else Node.id. */
  node: string;
}

export function identify(node: XdsNode | null | undefined): ClientIdentity | undefined {
  if (!node || !node.id) return undefined;
  const meta = node.metadata ? fromStruct(node.metadata) : {};
  const name = meta[NODE_NAME_METADATA];
  return { id: node.id, node: typeof name === 'string' && name ? name : node.id };
}

/** Subscription of one stream to one type: wildcard and/or explicit names. */
export class Subscription {
  wildcard = false;
  readonly names = new Set<string>();

  includes(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }
}

export abstract class AdsStream {
  protected client: ClientIdentity | undefined;
  private nonceSeq = 0;
  readonly opened = Date.now();

  constructor(
    protected readonly ctx: StreamContext,
    readonly mode: 'sotw' | 'delta',
    readonly peer: string,
  ) {}

  /** Called after every snapshot change; sends only what changed for this subscriber. */
  abstract push(): void;

  /** For /debug/config. */
  abstract describe(): Record<string, unknown>;

  get identity(): ClientIdentity | undefined {
    return this.client;
  }

  protected nextNonce(): string {
    return `${this.opened.toString(36)}-${++this.nonceSeq}`;
  }

  /** Learns the node from the first request that carries one; later requests may omit it. */
  protected learnNode(node: XdsNode | null | undefined): void {
    if (this.client) return;
    this.client = identify(node);
    if (this.client) this.ctx.log.info({ client: this.client.id, node: this.client.node, peer: this.peer, mode: this.mode }, 'xDS client connected');
  }

  /** The resources of `typeUrl` this client may see and has subscribed to. */
  protected visible(typeUrl: XdsTypeUrl, sub: Subscription): Map<string, XdsResource> {
    const all = resourcesFor(this.ctx.view.snapshot(), typeUrl, this.client?.node ?? '');
    if (sub.wildcard) return all;
    const out = new Map<string, XdsResource>();
    for (const n of sub.names) {
      const r = all.get(n);
      if (r) out.set(n, r);
    }
    return out;
  }

  protected recordNack(typeUrl: string, nonce: string, version: string, message: string): void {
    this.ctx.metrics.nacks.inc({ type: typeShortName(typeUrl) });
    this.ctx.log.warn(
      { client: this.client?.id, node: this.client?.node, type: typeShortName(typeUrl), nonce, version, error: message },
      `xDS NACK from ${this.client?.id ?? this.peer}: ${message}`,
    );
  }

  protected recordAck(typeUrl: string): void {
    this.ctx.metrics.acks.inc({ type: typeShortName(typeUrl) });
  }
}
