// What every xDS decoder on the agent shares: the NACK error, plain-message helpers, nodemesh metadata.

import { NodemeshError } from '../util/errors';
import { decodeAny, fromStruct } from './protos';
import { METADATA_NAMESPACE, TYPE_URL_PREFIX } from './resource-types';

/** A resource the agent cannot use; its message becomes the NACK's error_detail. */
export class XdsResourceError extends NodemeshError {
  constructor(message: string) {
    super('NM_XDS_REJECTED', message);
  }
}

/** An Any as decoded (DECODE_OPTIONS): type URL and bytes. */
export interface Any {
  type_url: string;
  value: Uint8Array;
}

/** A decoded message: proto field names, enums as names, defaults filled in. */
export type Msg = Record<string, unknown>;

export function durationMs(d: unknown, fallback: number): number {
  if (!d || typeof d !== 'object') return fallback;
  const { seconds, nanos } = d as { seconds?: string | number; nanos?: number };
  return Number(seconds ?? 0) * 1000 + Math.round((nanos ?? 0) / 1e6);
}

/** Most distinct strings `intern` shares at once; past it the table starts over (memory stays bounded). */
const INTERN_MAX = 65_536;
const interned = new Map<string, string>();

/**
 * One copy of a decoded string that many resources repeat: namespaces, service accounts, nodes, apps, cluster
 * names (each cluster's name is in its Cluster, its ClusterLoadAssignment and its VIP listener). A protobuf
 * decoder makes a new string per field; at 10,000 Services and 20,000 pods those copies were megabytes.
 */
export function intern(s: string): string {
  const had = interned.get(s);
  if (had !== undefined) return had;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(s, s);
  return s;
}

/**
 * Lets go of the intern table. Sharing matters while a large config is decoded (the same names come in CDS, EDS and
 * LDS of one push); once it is held, the table itself (up to 65,536 entries, ~1.8 MB) only keeps strings alive that
 * the config already holds, or no longer does. A later change decodes a few names again, each once.
 */
export function forgetInterned(): void {
  interned.clear();
}

/** `intern` for an optional string field. */
export function internOpt(v: unknown): string | undefined {
  return typeof v === 'string' ? intern(v) : undefined;
}

/** `metadata.filter_metadata.nodemesh` as JSON ({} when absent). */
export function nodemeshMeta(m: unknown): Record<string, unknown> {
  const fm = (m as { filter_metadata?: Record<string, unknown> } | null | undefined)?.filter_metadata;
  const s = fm?.[METADATA_NAMESPACE];
  return s ? fromStruct(s) : {};
}

/** True when `any` carries message type `typeName`. */
export function isType(any: unknown, typeName: string): any is Any {
  return (any as Any | null | undefined)?.type_url === TYPE_URL_PREFIX + typeName;
}

/** Decodes a typed_config, naming `where` when the bytes are bad. */
export function decodeTyped(where: string, any: Any): Msg {
  try {
    return decodeAny<Msg>(any);
  } catch (e) {
    throw new XdsResourceError(`${where}: cannot decode ${any.type_url}: ${(e as Error).message}`);
  }
}

/** The list field `name` of `m` (decoded repeated fields are arrays; absent ones become []). */
export function list(m: Msg | null | undefined, name: string): Msg[] {
  const v = m?.[name];
  return Array.isArray(v) ? (v as Msg[]) : [];
}

/** Map fields: decoded as {} when empty (a message field decodes as null when unset, {} when set but empty). */
const MAP_FIELDS = new Set(['typed_per_filter_config', 'cluster_specifier_plugins']);

/** Enum fields decode as their names; their default (first) value means unset. */
const ENUM_DEFAULTS: Record<string, string> = { require_tls: 'NONE' };

/** Set in the proto sense: a message present, a list or map not empty, true, a non-zero number, a string not empty. */
export function isSet(v: unknown, field = ''): boolean {
  if (v === null || v === undefined || v === false || v === '' || v === 0 || v === ENUM_DEFAULTS[field]) return false;
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length > 0;
  if (MAP_FIELDS.has(field) && typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Refuses each of `fields` that `m` sets, naming it and what the agent does instead. */
export function refuse(where: string, m: Msg, fields: Record<string, string>): void {
  // for-in, not Object.entries: called several times per resource decoded, and an array per call adds up.
  for (const f in fields) if (isSet(m[f], f)) throw new XdsResourceError(`${where}: ${f} is not supported (${fields[f]})`);
}
