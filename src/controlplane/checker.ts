// Walking one plain Kubernetes document: the Checker that records every problem with its field path, and the
// name rules and metadata reading every kind shares. Kind validators (validate.ts, policy-validate.ts,
// routes/route-validate.ts) build on this file and never on each other.

import type { ObjectMeta } from './objects';
import { ipFamily, notAnAddress } from '../util/ip';

export type FieldPath = (string | number)[];

export interface FieldIssue {
  path: FieldPath;
  message: string;
}

/** `spec.rules[0].matches[1].path`: how issues name a field. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

export type Json = Record<string, unknown>;

export function isMap(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

export interface NameRule {
  re: RegExp;
  what: string;
}

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const SUBDOMAIN: NameRule = { re: DNS_SUBDOMAIN, what: 'a DNS subdomain (lowercase letters, digits, "-", ".")' };
export const LABEL: NameRule = { re: DNS_LABEL, what: 'a DNS label (lowercase letters, digits, "-", at most 63)' };

/** Collects issues while walking one document; every getter records what it found wrong. */
export class Checker {
  readonly issues: FieldIssue[] = [];

  fail(path: FieldPath, message: string): void {
    this.issues.push({ path, message });
  }

  map(v: unknown, path: FieldPath, required: boolean): Json | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required (a mapping)');
      return undefined;
    }
    if (!isMap(v)) {
      this.fail(path, `must be a mapping, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  string(v: unknown, path: FieldPath, required: boolean, pattern?: NameRule): string | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required (a string)');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.fail(path, `must be a string, got ${describe(v)}`);
      return undefined;
    }
    if (pattern && !pattern.re.test(v)) {
      this.fail(path, `"${v}" is not ${pattern.what}`);
      return undefined;
    }
    return v;
  }

  /** A string that must be one of `values` (Kubernetes enums are case-sensitive). */
  oneOf<T extends string>(v: unknown, path: FieldPath, values: readonly T[], fallback?: T): T | undefined {
    const s = this.string(v, path, fallback === undefined);
    if (s === undefined) return fallback;
    if (!(values as readonly string[]).includes(s)) {
      this.fail(path, `must be one of ${values.join(', ')}, got "${s}"`);
      return undefined;
    }
    return s as T;
  }

  /** An integer in [min, max]. */
  int(v: unknown, path: FieldPath, required: boolean, min: number, max: number): number | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, `is required (an integer ${min}-${max})`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer ${min}-${max}, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  port(v: unknown, path: FieldPath, required: boolean): number | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required (a port number 1-65535)');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
      this.fail(path, `must be a port number 1-65535, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  stringMap(v: unknown, path: FieldPath): Record<string, string> {
    const m = this.map(v, path, false);
    const out: Record<string, string> = {};
    if (!m) return out;
    for (const [k, val] of Object.entries(m)) {
      if (typeof val !== 'string') this.fail([...path, k], `must be a string (quote it), got ${describe(val)}`);
      else out[k] = val;
    }
    return out;
  }

  array(v: unknown, path: FieldPath, required: boolean): unknown[] {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required (a list)');
      return [];
    }
    if (!Array.isArray(v)) {
      this.fail(path, `must be a list, got ${describe(v)}`);
      return [];
    }
    return v;
  }

  ip(v: unknown, path: FieldPath): string | undefined {
    const s = this.string(v, path, false);
    if (s === undefined) return undefined;
    if (ipFamily(s) === 0) {
      this.fail(path, notAnAddress(s));
      return undefined;
    }
    return s;
  }

  /** Fails every key of `m` not in `known` (a typo must not silently turn a rule into a broader one). */
  unknownFields(m: Json, path: FieldPath, known: readonly string[]): void {
    for (const k of Object.keys(m)) if (!known.includes(k)) this.fail([...path, k], `unknown field (known: ${known.join(', ')})`);
  }
}

/** `metadata`: name (checked by `nameRule`), namespace (default "default"), uid, labels, annotations. */
export function readMeta(c: Checker, doc: Json, nameRule: NameRule): ObjectMeta {
  const m = c.map(doc.metadata, ['metadata'], true) ?? {};
  const name = c.string(m.name, ['metadata', 'name'], true, nameRule) ?? '';
  const namespace = c.string(m.namespace, ['metadata', 'namespace'], false, { re: DNS_LABEL, what: 'a DNS label' }) ?? 'default';
  const uid = c.string(m.uid, ['metadata', 'uid'], false) ?? `${namespace}/${name}`;
  return {
    name,
    namespace,
    uid,
    labels: c.stringMap(m.labels, ['metadata', 'labels']),
    annotations: c.stringMap(m.annotations, ['metadata', 'annotations']),
  };
}
