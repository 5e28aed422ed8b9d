// Live tap: what one tapped request looks like, and the filter that selects requests (namespace, workload,
// path prefix, status class, reporter). Shared by the agent (which matches), the control plane (which
// merges and forwards subscriptions) and the CLI (which parses what a person types).

import { NodemeshError } from '../../util/errors';
import type { TapEvent } from './tap-event';

export const TAP_ERR = { BAD_FILTER: 'NM_TAP_BAD_FILTER' } as const;

export class TapFilterError extends NodemeshError<(typeof TAP_ERR)[keyof typeof TAP_ERR]> {}

export type { TapEvent };

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'error';

export interface TapFilter {
  /** Source or destination namespace. */
  namespace?: string;
  /** Source or destination workload (with `namespace`: on that side). */
  workload?: string;
  /** Request path prefix, as the client sent it (before rewrites). */
  pathPrefix?: string;
  /** `error` is a 5xx or any response flag, as the agent counts failures. */
  status?: StatusClass;
  /** Which agent's view: the client's (source), the server's (destination), or both (default). */
  reporter?: 'source' | 'destination';
}


const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Workload names are pod or owner names: DNS subdomains. */
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const STATUS = new Set(['1xx', '2xx', '3xx', '4xx', '5xx', 'error']);
const KEYS = ['namespace', 'workload', 'path', 'status', 'reporter'];

const bad = (msg: string): TapFilterError =>
  new TapFilterError(TAP_ERR.BAD_FILTER, msg, { hint: 'a filter is namespace=NS workload=NAME path=/PREFIX status=2xx|3xx|4xx|5xx|error reporter=source|destination, any of them' });

/** Checks a filter that arrived as data (JSON from a browser, a subscription from the control plane). */
export function validateTapFilter(f: Record<string, unknown>): TapFilter {
  const out: TapFilter = {};
  for (const [k, v] of Object.entries(f)) {
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw bad(`tap filter ${k}: expected a string, got ${typeof v}`);
    switch (k) {
      case 'namespace':
        if (!DNS_LABEL.test(v)) throw bad(`tap filter namespace "${v}" is not a namespace name (lower-case letters, digits, '-')`);
        out.namespace = v;
        break;
      case 'workload':
        if (!DNS_NAME.test(v)) throw bad(`tap filter workload "${v}" is not a workload name (lower-case letters, digits, '-', '.')`);
        out.workload = v;
        break;
      case 'path':
      case 'pathPrefix':
        if (!v.startsWith('/') || v.length > 1024 || /[\s\x00-\x1f]/.test(v)) throw bad(`tap filter path "${v.slice(0, 80)}" must start with '/' and have no spaces or control characters`);
        out.pathPrefix = v;
        break;
      case 'status':
        if (!STATUS.has(v)) throw bad(`tap filter status "${v}" is not one of 1xx, 2xx, 3xx, 4xx, 5xx, error`);
        out.status = v as StatusClass;
        break;
      case 'reporter':
        if (v !== 'source' && v !== 'destination') throw bad(`tap filter reporter "${v}" must be source or destination`);
        out.reporter = v;
        break;
      default:
        throw bad(`tap filter: unknown key "${k}" (keys: ${KEYS.join(', ')})`);
    }
  }
  return out;
}

/** `namespace=default workload=web path=/api status=5xx` (words, or one comma-separated word). */
export function parseTapFilter(words: string[]): TapFilter {
  const f: Record<string, string> = {};
  for (const w of words.flatMap((x) => x.split(',')).filter((x) => x.length > 0)) {
    const i = w.indexOf('=');
    if (i <= 0) throw bad(`tap filter "${w}" is not KEY=VALUE`);
    const k = w.slice(0, i);
    if (k in f) throw bad(`tap filter gives ${k} twice`);
    f[k] = w.slice(i + 1);
  }
  return validateTapFilter(f);
}

export function statusMatches(c: StatusClass, status: number, flags: string): boolean {
  if (c === 'error') return status >= 500 || status === 0 || flags !== '-';
  return Math.floor(status / 100) === Number(c[0]);
}

export function tapMatches(f: TapFilter, e: TapEvent): boolean {
  if (f.reporter !== undefined && f.reporter !== e.reporter) return false;
  if (f.namespace !== undefined || f.workload !== undefined) {
    const src = (f.namespace === undefined || f.namespace === e.sourceNamespace) && (f.workload === undefined || f.workload === e.sourceWorkload);
    const dst = (f.namespace === undefined || f.namespace === e.destinationNamespace) && (f.workload === undefined || f.workload === e.destinationWorkload);
    if (!src && !dst) return false;
  }
  if (f.pathPrefix !== undefined && !e.path.startsWith(f.pathPrefix)) return false;
  if (f.status !== undefined && !statusMatches(f.status, e.status, e.flags)) return false;
  return true;
}

/** A stable key per distinct filter (the control plane dedupes subscriptions with it). */
export function tapFilterKey(f: TapFilter): string {
  return JSON.stringify([f.namespace ?? '', f.workload ?? '', f.pathPrefix ?? '', f.status ?? '', f.reporter ?? '']);
}
