// The gRPC server: ADS (state of the world and delta) plus grpc.health.v1, fanning snapshot changes out to streams.

import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { adsServiceDefinition, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from '../xds/protos';
import { DeltaStream } from './ads-delta';
import { identify, type AdsStream, type StreamContext } from './ads-stream';
import type { XdsNode } from '../xds/protos';
import { SotwStream } from './ads-sotw';
import { ControlPlaneError, CP_ERR } from './errors';

/** Who is on the other end of a TLS stream: resolves with the caller's node, or rejects with `status` + message. */
export interface StreamGate {
  authenticate(metadata: grpc.Metadata): Promise<string>;
}

export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/** Names one stream may subscribe to per type (an agent looking up 10,000 Services holds about 2 per Service). */
export const DEFAULT_MAX_NAMES_PER_TYPE = 100_000;

/** gRPC server options of every listener: keepalive, and the message limit the agents share (xds/limits.ts). */
function serverOptions(maxMessageBytes: number): grpc.ServerOptions {
  return {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  };
}

export class AdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Set<AdsStream>();
  readonly health = new HealthImplementation({ '': 'NOT_SERVING', [ADS_SERVICE_NAME]: 'NOT_SERVING' });
  private bound: string | undefined;
  private secureServer: grpc.Server | undefined;

  constructor(private readonly ctx: StreamContext) {
    this.server = new grpc.Server(serverOptions(ctx.limits.maxMessageBytes));
    this.server.addService(adsServiceDefinition(), this.adsHandlers(undefined));
    this.health.addToServer(this.server);
  }

  /**
   * The ADS handlers; with a gate (the TLS listener), each stream is held until the caller's credential names
   * its node, and a stream asking for another node's config is ended with PERMISSION_DENIED.
   */
  private adsHandlers(gate: StreamGate | undefined): grpc.UntypedServiceImplementation {
    return {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const s = new SotwStream(this.ctx, call);
        this.attach(s, call, this.gated(gate, call, (req: DiscoveryRequest) => s.onRequest(req)));
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        const s = new DeltaStream(this.ctx, call);
        this.attach(s, call, this.gated(gate, call, (req: DeltaDiscoveryRequest) => s.onRequest(req)));
      },
    };
  }

  private gated<Req extends { node?: XdsNode | null }>(gate: StreamGate | undefined, call: grpc.ServerDuplexStream<Req, unknown>, onRequest: (r: Req) => void): (r: Req) => void {
    if (!gate) return onRequest;
    let node: string | undefined;
    let refused = false;
    const held: Req[] = [];
    const refuse = (code: grpc.status, details: string): void => {
      if (refused) return;
      refused = true;
      held.length = 0;
      this.ctx.log.warn({ peer: call.getPeer(), code, reason: details }, 'xDS stream refused');
      call.emit('error', { code, details });
    };
    const deliver = (r: Req): void => {
      const claimed = identify(r.node)?.node;
      if (claimed !== undefined && claimed !== node) {
        refuse(grpc.status.PERMISSION_DENIED, `this credential belongs to node ${node}, but the request is for node ${claimed}`);
        return;
      }
      onRequest(r);
    };
    gate.authenticate(call.metadata).then(
      (n) => {
        node = n;
        for (const r of held.splice(0)) if (!refused) deliver(r);
      },
      (err: { status?: grpc.status; message?: string }) => refuse(err.status ?? grpc.status.UNAUTHENTICATED, err.message ?? String(err)),
    );
    return (r) => {
      if (refused) return;
      if (node !== undefined) return deliver(r);
      // A client sends a handful of subscriptions before the first answer; more than this while unauthenticated is not a client.
      if (held.length >= 32) return refuse(grpc.status.RESOURCE_EXHAUSTED, 'too many requests before authentication completed');
      held.push(r);
    };
  }

  /**
   * Serves ADS, health and `extra` services over TLS on `address`, each ADS stream gated by `gate` (the agent's
   * projected token). Returns the bound address.
   */
  async listenSecure(address: string, creds: grpc.ServerCredentials, gate: StreamGate, extra: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[]): Promise<string> {
    const server = new grpc.Server(serverOptions(this.ctx.limits.maxMessageBytes));
    server.addService(adsServiceDefinition(), this.adsHandlers(gate));
    for (const e of extra) server.addService(e.definition, e.handlers);
    this.health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, creds, (err, p) => (err ? reject(err) : resolve(p)))).catch((err: unknown) => {
      server.forceShutdown();
      throw new ControlPlaneError(CP_ERR.LISTEN, `cannot listen for xDS over TLS on ${address}`, {
        hint: 'is another control plane running there? choose another --secure-address',
        cause: err,
      });
    });
    this.secureServer = server;
    return address.replace(/:\d+$/, `:${port}`);
  }

  /** Serves another gRPC service on the same listener (the CA); call before `listen`. */
  addService(definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation): void {
    this.server.addService(definition, handlers);
  }

  private attach<Req, Res>(stream: AdsStream, call: grpc.ServerDuplexStream<Req, Res>, onRequest: (r: Req) => void): void {
    this.streams.add(stream);
    this.ctx.metrics.connected.inc({ mode: stream.mode });
    let done = false;
    const finish = (why: string, err?: unknown): void => {
      if (done) return;
      done = true;
      this.streams.delete(stream);
      this.ctx.metrics.connected.dec({ mode: stream.mode });
      this.ctx.log.info({ client: stream.identity?.id, node: stream.identity?.node, peer: stream.peer, mode: stream.mode, why, err }, 'xDS client disconnected');
    };
    call.on('data', (req: Req) => {
      try {
        onRequest(req);
      } catch (err) {
        // A bug serving one client must not take down the server: end that stream so the client reconnects.
        this.ctx.log.error({ err, client: stream.identity?.id }, 'xDS request handling failed; closing the stream');
        call.emit('error', err);
        call.end();
        finish('internal error', err);
      }
    });
    call.on('end', () => {
      call.end();
      finish('client closed');
    });
    call.on('cancelled', () => finish('cancelled'));
    call.on('error', (err) => finish('stream error', err));
  }

  /** Binds `address`: `host:port` (port 0 picks one) or `unix:///path`. Returns the address clients should dial. */
  async listen(address: string): Promise<string> {
    if (address.startsWith('unix:')) {
      const p = address.replace(/^unix:(\/\/)?/, '');
      try {
        if (fs.statSync(p).isSocket()) fs.unlinkSync(p); // stale socket of a previous run
      } catch {
        /* absent: fine */
      }
    }
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
    }).catch((err: unknown) => {
      throw new ControlPlaneError(CP_ERR.LISTEN, `cannot listen for xDS on ${address}`, {
        hint: 'is another control plane running there? choose another --xds-address',
        cause: err,
      });
    });
    this.bound = address.startsWith('unix:') ? address : address.replace(/:\d+$/, `:${port}`);
    this.health.setStatus('', 'SERVING');
    this.health.setStatus(ADS_SERVICE_NAME, 'SERVING');
    return this.bound;
  }

  /** Sends every stream what changed for it since its last response. */
  push(): void {
    for (const s of this.streams) {
      try {
        s.push();
      } catch (err) {
        this.ctx.log.error({ err, client: s.identity?.id }, 'xDS push failed for one client');
      }
    }
  }

  describeStreams(): Record<string, unknown>[] {
    return [...this.streams].map((s) => s.describe());
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Stops accepting and ends every stream at once (ADS streams never end on their own); clients reconnect later. */
  async close(): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(ADS_SERVICE_NAME, 'NOT_SERVING');
    this.server.forceShutdown();
    this.secureServer?.forceShutdown();
    if (this.bound?.startsWith('unix:')) fs.rmSync(this.bound.replace(/^unix:(\/\/)?/, ''), { force: true });
  }
}
