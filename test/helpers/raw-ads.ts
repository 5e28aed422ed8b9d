// A raw ADS client for control-plane tests: speaks the wire protocol directly, with no agent in between.

import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { adsServiceDefinition, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../src/xds/protos';

export interface RawAdsClient extends grpc.Client {
  StreamAggregatedResources(): grpc.ClientDuplexStream<object, DiscoveryResponse>;
  DeltaAggregatedResources(): grpc.ClientDuplexStream<object, DeltaDiscoveryResponse>;
}

/** An insecure ADS client for the control plane at `address`. */
export function rawAdsClient(address: string): RawAdsClient {
  const Ads = grpc.makeGenericClientConstructor(adsServiceDefinition(), 'AggregatedDiscoveryService');
  return new Ads(address, grpc.credentials.createInsecure()) as unknown as RawAdsClient;
}

/** A bidi ADS stream with an awaitable inbox. */
export class RawAdsStream<Res> {
  private readonly inbox: Res[] = [];
  private waiter: (() => void) | undefined;

  constructor(readonly call: grpc.ClientDuplexStream<object, Res>) {
    call.on('data', (m: Res) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    call.on('error', () => undefined);
  }

  send(req: object): void {
    this.call.write(req);
  }

  async next(timeoutMs = 2000): Promise<Res> {
    const until = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no xDS response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.inbox.shift()!;
  }

  /** Responses received and not yet taken by next(). */
  pending(): number {
    return this.inbox.length;
  }

  /** Asserts nothing arrives for `ms`. */
  async quiet(ms = 250): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    assert.equal(this.inbox.length, 0, `unexpected response: ${JSON.stringify(this.inbox[0])?.slice(0, 300)}`);
  }

  close(): void {
    this.call.cancel();
  }
}
