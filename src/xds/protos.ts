// Envoy xDS v3 message codecs and the ADS gRPC service definition, over the types in protos/envoy-types.json.

import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { grpcCodec, type GrpcCodec } from '../util/grpc-codec';
import { loadEnvoyDescriptor } from './envoy-descriptor';
import { encodeDeltaResponse } from './encode-delta-response';
import { decodePlain } from './plain-decoder';
import { TYPE_URL_PREFIX } from './resource-types';

let cachedRoot: protobuf.Root | undefined;

/** The protobufjs Root with every Envoy type nodemesh uses (from protos/envoy-types.json, loaded once). */
export function envoyRoot(): protobuf.Root {
  cachedRoot ??= loadEnvoyDescriptor();
  return cachedRoot;
}

const types = new Map<string, protobuf.Type>();

/** A type by full name; looked up once (a lookup walks the namespaces, and every resource decoded asks). */
export function messageType(fullName: string): protobuf.Type {
  let t = types.get(fullName);
  if (!t) {
    t = envoyRoot().lookupType(fullName);
    types.set(fullName, t);
  }
  return t;
}

/** Options for decoded messages: proto field names, enums as names, 64-bit ints as strings, oneof names set. */
export const DECODE_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/** A google.protobuf.Any on the wire: what encoded messages carry. */
export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

/**
 * A not-yet-encoded Any inside a message tree: the message's own fields beside `@type`, the form protobufjs'
 * Any converter encodes in place (so a tree is encoded with one `fromObject`, no copy). Resources are built as
 * plain trees with these so they can be fingerprinted and shown readable.
 */
export interface AnyOf {
  '@type': string;
  [field: string]: unknown;
}

export function anyOf(typeName: string, message: Record<string, unknown>): AnyOf {
  return { '@type': TYPE_URL_PREFIX + typeName, ...message };
}

/** Encodes a plain tree (snake_case fields, `anyOf` values allowed) as message `typeName`. */
export function encodeMessage(typeName: string, message: Record<string, unknown>): Buffer {
  const t = messageType(typeName);
  // One conversion: the verified instance is the one encoded.
  const m = t.fromObject(message);
  const err = t.verify(m);
  if (err) throw new Error(`${typeName}: ${err}`);
  return t.encode(m).finish() as Buffer;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/**
 * `message` encoded as `typeName`, followed by `items` as the elements of its repeated message field `field`,
 * each already encoded. Protobuf readers accept a field's elements after any other field, so a message with
 * thousands of elements (a node's filter chains, a directory's endpoints) is re-encoded by concatenation when
 * one element changes.
 */
export function encodeSpliced(typeName: string, message: Record<string, unknown>, field: string, items: readonly Uint8Array[]): Buffer {
  const f = messageType(typeName).fields[field]?.resolve();
  if (!f || !f.repeated || !(f.resolvedType instanceof protobuf.Type)) throw new Error(`${typeName}.${field} is not a repeated message field`);
  if (message[field] !== undefined) throw new Error(`${typeName}.${field} must be given as items only`);
  const tag = varint((f.id << 3) | 2);
  const parts: Uint8Array[] = [encodeMessage(typeName, message)];
  for (const it of items) parts.push(tag, varint(it.length), it);
  return Buffer.concat(parts);
}

export function toAny(typeName: string, message: Record<string, unknown>): AnyMessage {
  return { type_url: TYPE_URL_PREFIX + typeName, value: encodeMessage(typeName, message) };
}

/** Readable form of encoded bytes: nested Anys expanded as `{"@type": URL, ...fields}`, enums by name, 64-bit integers as numbers (as the trees are built), no defaults. */
export function decodeReadable(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = messageType(typeName);
  return t.toObject(t.decode(bytes), { json: true, enums: String, longs: Number, bytes: String }) as Record<string, unknown>;
}

/** `bytes` as message `typeName` in DECODE_OPTIONS form (decoded in one pass: plain-decoder.ts). */
export function decodeMessage<T = Record<string, unknown>>(typeName: string, bytes: Uint8Array): T {
  return decodePlain(messageType(typeName), bytes) as T;
}

/** Decodes an Any whose type nodemesh knows; throws on an unknown type URL. */
export function decodeAny<T = Record<string, unknown>>(any: { type_url: string; value: Uint8Array }): T {
  if (!any.type_url.startsWith(TYPE_URL_PREFIX)) throw new Error(`unsupported Any type_url ${any.type_url}`);
  return decodeMessage<T>(any.type_url.slice(TYPE_URL_PREFIX.length), any.value);
}

/** Readable form of a tree for debug output: Buffers as base64, everything else as built. */
export function toDebugJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toDebugJson);
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) out[k] = toDebugJson(val);
    return out;
  }
  return v;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/**
 * JSON -> google.protobuf.Struct in protobufjs object form. Struct/Value come from protobufjs' built-in
 * well-known types, whose field names are camelCase whatever keepCase says.
 */
export function toStruct(obj: Record<string, JsonValue>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

function toValue(v: JsonValue): Record<string, unknown> {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}

/** google.protobuf.Struct (decoded with DECODE_OPTIONS) -> JSON. */
export function fromStruct(s: unknown): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const fields = (s as { fields?: Record<string, unknown> } | null | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = fromValue(v);
  return out;
}

function fromValue(v: unknown): JsonValue {
  const val = (v ?? {}) as Record<string, unknown>;
  switch (val.kind) {
    case 'stringValue':
      return String(val.stringValue);
    case 'numberValue':
      return Number(val.numberValue);
    case 'boolValue':
      return Boolean(val.boolValue);
    case 'structValue':
      return fromStruct(val.structValue);
    case 'listValue':
      return ((val.listValue as { values?: unknown[] } | undefined)?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

const DELTA_RESPONSE = 'envoy.service.discovery.v3.DeltaDiscoveryResponse';

/**
 * Encodes as grpc-codec does (a DeltaDiscoveryResponse's resources written directly: encode-delta-response.ts);
 * decodes with the plain decoder (the same objects, without the instances between).
 */
function codec(typeName: string): GrpcCodec {
  const serialize =
    typeName === DELTA_RESPONSE ? (v: object): Buffer => encodeDeltaResponse(messageType(typeName), v as Record<string, unknown>) : grpcCodec(() => messageType(typeName), DECODE_OPTIONS).serialize;
  return { serialize, deserialize: (b) => decodePlain(messageType(typeName), b) };
}

const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/**
 * AggregatedDiscoveryService for @grpc/grpc-js: `server.addService(adsServiceDefinition(), impl)` or
 * `makeGenericClientConstructor(adsServiceDefinition())`. Messages are plain objects in DECODE_OPTIONS form.
 */
export function adsServiceDefinition(): ServiceDefinition {
  const req = codec('envoy.service.discovery.v3.DiscoveryRequest');
  const res = codec('envoy.service.discovery.v3.DiscoveryResponse');
  const dreq = codec('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const dres = codec(DELTA_RESPONSE);
  return {
    StreamAggregatedResources: {
      path: `/${ADS_SERVICE}/StreamAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: 'streamAggregatedResources',
    },
    DeltaAggregatedResources: {
      path: `/${ADS_SERVICE}/DeltaAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: dreq.serialize,
      requestDeserialize: dreq.deserialize,
      responseSerialize: dres.serialize,
      responseDeserialize: dres.deserialize,
      originalName: 'deltaAggregatedResources',
    },
  } as ServiceDefinition;
}

/** Plain-object shapes of the discovery messages (DECODE_OPTIONS form). */
export interface XdsNode {
  id: string;
  cluster: string;
  metadata?: unknown;
  user_agent_name?: string;
}

export interface RpcStatus {
  code: number;
  message: string;
}

export interface DiscoveryRequest {
  version_info: string;
  node?: XdsNode | null;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: RpcStatus | null;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
  control_plane?: { identifier: string };
}

export interface DeltaDiscoveryRequest {
  node?: XdsNode | null;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: RpcStatus | null;
}

export interface DeltaResource {
  name: string;
  version: string;
  resource: AnyMessage;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: DeltaResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
  control_plane?: { identifier: string };
}
