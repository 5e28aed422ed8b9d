// What both ADS stream flavours share: the client's node identity, nonces, per-type state, and the snapshot they serve from.

import type { Logger } from '../telemetry/logger';
import { fromStruct, type XdsNode } from '../xds/protos';
import { XDS_RESPONSE_OVERHEAD_BYTES } from '../xds/limits';
import { isXdsTypeUrl, NODE_NAME_METADATA, typeShortName, type XdsTypeUrl } from '../xds/resource-types';
import type { ControlPlaneMetrics } from './metrics';
import { resourceFor, resourcesFor, type ClientScope, type Snapshot, type XdsResource } from './translate';

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
  limits: StreamLimits;
}

/** What one ADS stream may cost (see xds/limits.ts). */
export interface StreamLimits {
  /** The largest message a client takes (XDS_MAX_MESSAGE_BYTES unless configured). */
  maxMessageBytes: number;
  /** Resource bytes per response before another is started. */
  targetBytes: number;
  /** Names one stream may subscribe to per type; more are refused (counted, logged once). */
  maxNamesPerType: number;
}

export interface ClientIdentity {
  id: string;
  /** The Kubernetes node the client runs on: metadata NODE_NAME, else Node.id. */
  node: string;
  /** A nodemesh agent (user agent `nodemesh-agent`): it is not sent what only proxyless clients use. */
  agent: boolean;
}

/** What the agent's ADS client sends as Node.user_agent_name. */
export const AGENT_USER_AGENT = 'nodemesh-agent';

export function identify(node: XdsNode | null | undefined): ClientIdentity | undefined {
  if (!node || !node.id) return undefined;
  const meta = node.metadata ? fromStruct(node.metadata) : {};
  const name = meta[NODE_NAME_METADATA];
  return { id: node.id, node: typeof name === 'string' && name ? name : node.id, agent: node.user_agent_name === AGENT_USER_AGENT };
}

/** Subscription of one stream to one type: wildcard and/or explicit names. */
export class Subscription {
  wildcard = false;
  readonly names = new Set<string>();

  includes(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }
}

/** Resources withheld because they exceed the message limit: logged once per name and version. */
const withheldLogged = new Map<string, string>();

/** One ADS stream; `TypeState` is what the flavour keeps per subscribed type. */
export abstract class AdsStream<TypeState = unknown> {
  protected client: ClientIdentity | undefined;
  protected readonly types = new Map<XdsTypeUrl, TypeState>();
  private nonceSeq = 0;
  readonly opened = Date.now();

  constructor(
    protected readonly ctx: StreamContext,
    readonly mode: 'sotw' | 'delta',
    readonly peer: string,
  ) {}

  /** The per-type part of describe(). */
  protected abstract describeType(st: TypeState): Record<string, unknown>;

  /** Called after every snapshot change; sends only what changed for this subscriber. */
  abstract push(): void;

  /** For /debug/config. */
  describe(): Record<string, unknown> {
    return {
      mode: this.mode,
      peer: this.peer,
      client: this.client,
      types: Object.fromEntries([...this.types].map(([t, st]) => [typeShortName(t), this.describeType(st)])),
    };
  }

  get identity(): ClientIdentity | undefined {
    return this.client;
  }

  /**
   * What every request starts with: learn the node, ignore unsupported types, and find the type's state, creating it
   * on the first request for the type (`first`). Undefined when the request is to be ignored.
   */
  protected typeStateFor(
    req: { node?: XdsNode | null; type_url: string },
    create: () => TypeState,
  ): { typeUrl: XdsTypeUrl; st: TypeState; first: boolean } | undefined {
    this.learnNode(req.node);
    if (!isXdsTypeUrl(req.type_url)) {
      const what = this.mode === 'delta' ? 'delta xDS request' : 'xDS request';
      this.ctx.log.warn({ client: this.client?.id, type: req.type_url }, `${what} for an unsupported type; ignoring it`);
      return undefined;
    }
    const typeUrl = req.type_url;
    let st = this.types.get(typeUrl);
    const first = st === undefined;
    if (!st) {
      st = create();
      this.types.set(typeUrl, st);
    }
    return { typeUrl, st, first };
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
    if (sub.wildcard) return resourcesFor(this.ctx.view.snapshot(), typeUrl, this.scope());
    const out = new Map<string, XdsResource>();
    for (const n of sub.names) {
      const r = this.resource(typeUrl, n);
      if (r) out.set(n, r);
    }
    return out;
  }

  /** One resource of `typeUrl` this client may see (its own inbound Listener, no other node's). */
  protected resource(typeUrl: XdsTypeUrl, name: string): XdsResource | undefined {
    return resourceFor(this.ctx.view.snapshot(), typeUrl, name, this.scope());
  }

  protected scope(): ClientScope {
    return { node: this.client?.node ?? '', agent: this.client?.agent ?? false };
  }

  /** Whether `r` fits in one response; if not it is withheld (clients keep what they had) and said so once. */
  protected fits(r: XdsResource, bytes: number): boolean {
    if (bytes + XDS_RESPONSE_OVERHEAD_BYTES <= this.ctx.limits.maxMessageBytes) return true;
    this.ctx.metrics.withheld.inc({ type: typeShortName(r.typeUrl) });
    if (withheldLogged.get(r.name) !== r.version) {
      withheldLogged.set(r.name, r.version);
      if (withheldLogged.size > 10_000) withheldLogged.delete(withheldLogged.keys().next().value!);
      this.ctx.log.error(
        { resource: r.name, type: typeShortName(r.typeUrl), bytes, limit: this.ctx.limits.maxMessageBytes },
        `xDS resource ${r.name} is ${bytes} bytes, over the ${this.ctx.limits.maxMessageBytes}-byte message limit: not sent (clients keep their previous version); raise --xds-max-message-bytes on the control plane and the agents together`,
      );
    }
    return false;
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
