// Encoded xDS resources as the control plane keeps them between rebuilds: only their bytes, each piece's bytes
// in one allocation of their exact size.

import { createHash } from 'node:crypto';
import { decodeReadable, encodeMessage, type AnyMessage } from '../xds/protos';
import { CDS, CLUSTER_TYPE, EDS, ENDPOINT_TYPE, LDS, LISTENER_TYPE, RDS, ROUTE_TYPE, type XdsTypeUrl } from '../xds/resource-types';

/** One encoded resource with its content version (a hash, so identical config has identical versions everywhere). */
export interface XdsResource {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  readonly version: string;
  /** Made when asked (a response being built): the resource keeps its bytes, not an Any around them. */
  readonly any: AnyMessage;
  /** The message, decoded from `any` when asked (for /debug/config and tests): only the bytes are kept. */
  readonly message: Record<string, unknown>;
}

export const TYPE_NAMES: Record<XdsTypeUrl, string> = {
  [CDS]: CLUSTER_TYPE,
  [EDS]: ENDPOINT_TYPE,
  [LDS]: LISTENER_TYPE,
  [RDS]: ROUTE_TYPE,
};

class EncodedResource implements XdsResource {
  constructor(
    readonly typeUrl: XdsTypeUrl,
    readonly name: string,
    readonly version: string,
    private readonly bytes: Buffer,
  ) {}

  get any(): AnyMessage {
    // type_url is the shared constant: one string for every resource of the type.
    return { type_url: this.typeUrl, value: this.bytes };
  }

  get message(): Record<string, unknown> {
    return decodeReadable(TYPE_NAMES[this.typeUrl], this.bytes);
  }
}

function versionOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/**
 * `parts` copied into one allocation of their total size, as views of it. Small encoder outputs are slices of
 * Node's shared 8 KiB pool: one kept slice keeps its whole slab (at 50,000 Services, 209 MB of buffers held
 * 164 MB of resources). A piece's parts live and die together, so one allocation per piece wastes nothing.
 */
export function ownBytes(parts: readonly Uint8Array[]): Buffer[] {
  let total = 0;
  for (const p of parts) total += p.length;
  const block = Buffer.allocUnsafeSlow(total);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of parts) {
    block.set(p, at);
    out.push(block.subarray(at, at + p.length));
    at += p.length;
  }
  return out;
}

/**
 * A resource from bytes already encoded as its type. Bytes that are a view into a larger allocation (the pool,
 * or a buffer being reused) are copied into their own.
 */
export function encodedResource(typeUrl: XdsTypeUrl, name: string, bytes: Buffer): XdsResource {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : ownBytes([bytes])[0]!;
  return new EncodedResource(typeUrl, name, versionOf(own), own);
}

export function makeResource(typeUrl: XdsTypeUrl, name: string, message: Record<string, unknown>): XdsResource {
  return encodedResource(typeUrl, name, encodeMessage(TYPE_NAMES[typeUrl], message));
}

/** Several resources encoded into one allocation (a Service's Clusters, Listeners, route tables). */
export function makeResources(list: readonly { typeUrl: XdsTypeUrl; name: string; message: Record<string, unknown> }[]): XdsResource[] {
  const bytes = ownBytes(list.map((r) => encodeMessage(TYPE_NAMES[r.typeUrl], r.message)));
  return list.map((r, i) => new EncodedResource(r.typeUrl, r.name, versionOf(bytes[i]!), bytes[i]!));
}
