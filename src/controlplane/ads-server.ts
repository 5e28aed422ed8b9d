// The gRPC server: ADS (state of the world and delta) plus grpc.health.v1, fanning snapshot changes out to streams.

import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { adsServiceDefinition, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from '../xds/protos';
import { DeltaStream } from './ads-delta';
import type { AdsStream, StreamContext } from './ads-stream';
import { SotwStream } from './ads-sotw';
import { ControlPlaneError, CP_ERR } from './errors';

export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

export class AdsServer {
  private readonly server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
  private readonly streams = new Set<AdsStream>();
  readonly health = new HealthImplementation({ '': 'NOT_SERVING', [ADS_SERVICE_NAME]: 'NOT_SERVING' });
  private bound: string | undefined;

  constructor(private readonly ctx: StreamContext) {
    this.server.addService(adsServiceDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const s = new SotwStream(ctx, call);
        this.attach(s, call, (req) => s.onRequest(req));
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        const s = new DeltaStream(ctx, call);
        this.attach(s, call, (req) => s.onRequest(req));
      },
    });
    this.health.addToServer(this.server);
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
    if (this.bound?.startsWith('unix:')) fs.rmSync(this.bound.replace(/^unix:(\/\/)?/, ''), { force: true });
  }
}
