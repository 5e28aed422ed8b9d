// Validates what a Gateway API rule asks of the resilience layers: `timeouts` and `retry` (HTTPRoute), the
// RequestMirror filter and the ExtensionRef filter naming nodemesh's FaultInjection. Same rules as Gateway
// API's CRD schema and CEL (so a file gets the errors the API server would give), every problem with its
// field path. route-validate.ts calls these; the FaultInjection object itself is traffic/fault-injection.ts.

import { Checker, LABEL, SUBDOMAIN, type FieldPath } from '../checker';
import type { BackendRef, MirrorRef, RouteRule } from './route-objects';

/** GEP-2257 Duration: up to four number+unit pairs. */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
/** The group and kind of nodemesh's fault-injection extension filter. */
export const FAULT_GROUP = 'nodemesh.io';
export const FAULT_KIND = 'FaultInjection';
/** Retries a route may ask for: more would only hide a failing backend (Envoy caps nothing; Istio neither). */
export const MAX_ATTEMPTS = 100;

/** GEP-2257 Duration in ms ("0s" is 0). */
export function gatewayDuration(c: Checker, v: unknown, path: FieldPath): number | undefined {
  const s = c.string(v, path, false);
  if (s === undefined) return undefined;
  if (!DURATION.test(s)) {
    c.fail(path, `"${s}" is not a Gateway API duration (like 10s, 1m30s, 500ms)`);
    return undefined;
  }
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let ms = 0;
  for (const [, n, u] of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) ms += Number(n) * unit[u!]!;
  return ms;
}

/** `timeouts` of an HTTPRoute rule: request (the whole exchange) and backendRequest (one attempt). */
export function timeoutsOf(c: Checker, raw: unknown, path: FieldPath): RouteRule['timeouts'] {
  const t = c.map(raw, path, true) ?? {};
  c.unknownFields(t, path, ['request', 'backendRequest']);
  const requestMs = gatewayDuration(c, t.request, [...path, 'request']);
  const backendRequestMs = gatewayDuration(c, t.backendRequest, [...path, 'backendRequest']);
  if (requestMs !== undefined && backendRequestMs !== undefined && requestMs !== 0 && backendRequestMs > requestMs) {
    c.fail([...path, 'backendRequest'], 'must not be longer than request');
  }
  const out: NonNullable<RouteRule['timeouts']> = {};
  if (requestMs !== undefined) out.requestMs = requestMs;
  if (backendRequestMs !== undefined) out.backendRequestMs = backendRequestMs;
  return out;
}

/** `retry` of an HTTPRoute rule: codes 400-599 (a set), attempts at least 1, backoff a duration. */
export function retryOf(c: Checker, raw: unknown, path: FieldPath): RouteRule['retry'] {
  const m = c.map(raw, path, true) ?? {};
  c.unknownFields(m, path, ['codes', 'attempts', 'backoff']);
  const codes: number[] = [];
  c.array(m.codes, [...path, 'codes'], false).forEach((v, i) => {
    const code = c.int(v, [...path, 'codes', i], true, 400, 599);
    if (code === undefined) return;
    if (codes.includes(code)) c.fail([...path, 'codes', i], `${code} is listed twice (codes is a set)`);
    else codes.push(code);
  });
  const out: NonNullable<RouteRule['retry']> = { codes };
  const attempts = c.int(m.attempts, [...path, 'attempts'], false, 1, MAX_ATTEMPTS);
  if (attempts !== undefined) out.attempts = attempts;
  const backoffMs = gatewayDuration(c, m.backoff, [...path, 'backoff']);
  if (backoffMs !== undefined) out.backoffMs = backoffMs;
  return out;
}

/** A BackendObjectReference (no weight, no filters): the backend of a RequestMirror. */
function objectRef(c: Checker, raw: unknown, path: FieldPath, namespace: string): BackendRef | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['group', 'kind', 'namespace', 'name', 'port']);
  const group = c.string(m.group, [...path, 'group'], false) ?? '';
  const kind = c.string(m.kind, [...path, 'kind'], false) ?? 'Service';
  const isService = group === '' && kind === 'Service';
  const ref: BackendRef = {
    group,
    kind,
    namespace: c.string(m.namespace, [...path, 'namespace'], false, LABEL) ?? namespace,
    name: c.string(m.name, [...path, 'name'], true, isService ? LABEL : SUBDOMAIN) ?? '',
    weight: 1,
  };
  const port = c.port(m.port, [...path, 'port'], isService);
  if (port !== undefined) ref.port = port;
  return ref;
}

/**
 * A RequestMirror filter: its backendRef and share, `percent` (0-100) or `fraction` (numerator over a
 * denominator of at least 1, default 100), never both; neither means every request.
 */
export function mirrorOf(c: Checker, raw: unknown, path: FieldPath, namespace: string): MirrorRef | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['backendRef', 'percent', 'fraction']);
  const backend = objectRef(c, m.backendRef, [...path, 'backendRef'], namespace);
  if (m.percent !== undefined && m.fraction !== undefined) c.fail([...path, 'fraction'], 'only one of percent or fraction may be specified');
  let fraction = 1;
  if (m.percent !== undefined) {
    const pct = c.int(m.percent, [...path, 'percent'], true, 0, 100);
    if (pct !== undefined) fraction = pct / 100;
  } else if (m.fraction !== undefined) {
    const fp = [...path, 'fraction'];
    const f = c.map(m.fraction, fp, true) ?? {};
    c.unknownFields(f, fp, ['numerator', 'denominator']);
    const num = c.int(f.numerator, [...fp, 'numerator'], true, 0, 2 ** 31 - 1);
    const den = c.int(f.denominator, [...fp, 'denominator'], false, 1, 2 ** 31 - 1) ?? 100;
    if (num !== undefined && num > den) c.fail([...fp, 'numerator'], `${num} is more than the denominator ${den} (a share of requests is at most all of them)`);
    else if (num !== undefined) fraction = num / den;
  }
  return backend ? { backend, fraction } : undefined;
}

/** An ExtensionRef filter: nodemesh's one extension filter is a FaultInjection in the route's namespace. */
export function faultRefOf(c: Checker, raw: unknown, path: FieldPath, namespace: string): RouteRule['fault'] {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['group', 'kind', 'name']);
  const group = c.string(m.group, [...path, 'group'], true);
  const kind = c.string(m.kind, [...path, 'kind'], true);
  const name = c.string(m.name, [...path, 'name'], true, SUBDOMAIN);
  if (group !== undefined && kind !== undefined && (group !== FAULT_GROUP || kind !== FAULT_KIND)) {
    c.fail([...path, 'kind'], `nodemesh's extension filter is group ${FAULT_GROUP}, kind ${FAULT_KIND}; got group "${group}", kind "${kind}"`);
    return undefined;
  }
  return name === undefined ? undefined : { namespace, name };
}
