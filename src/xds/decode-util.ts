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
