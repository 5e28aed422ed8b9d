// RDS on the agent, the resilience part of a route: RouteAction timeout, retry_policy,
// request_mirror_policies and hash_policy, and the route's typed_per_filter_config for the HTTP fault filter,
// into RoutePolicy (state/routes.ts). What the layers cannot honour is refused by name (a NACK says what to
// remove); Envoy's defaults apply to what is left unset (num_retries 1, a 25 ms backoff, percentages 0).

import { RETRY_ON, type RoutePolicy } from '../state/routes';
import { decodeTyped, durationMs, isSet, isType, list, refuse, XdsResourceError, type Msg } from './decode-util';
import { HTTP_FAULT_FILTER, HTTP_FAULT_TYPE } from './resource-types';

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** A FractionalPercent as a share 0-1 (unset: 0, as Envoy reads it). */
export function fraction(where: string, fp: unknown): number {
  if (fp === null || fp === undefined) return 0;
  const m = fp as Msg;
  const den = DENOMINATORS[String(m.denominator ?? 'HUNDRED')];
  if (den === undefined) throw new XdsResourceError(`${where}: percentage denominator ${String(m.denominator)} is not HUNDRED, TEN_THOUSAND or MILLION`);
  return Math.min(1, Number(m.numerator ?? 0) / den);
}

/** The HTTP fault filter's config (HTTPFault) as a route's fault; undefined when it injects nothing. */
export function decodeHttpFault(where: string, f: Msg): RoutePolicy['fault'] | undefined {
  refuse(where, f, {
    upstream_cluster: 'faults apply to every request of the route',
    headers: 'faults apply to every request of the route',
    downstream_nodes: 'faults apply to every request of the route',
    max_active_faults: 'faults are not capped',
    response_rate_limit: 'response rate limiting is not supported',
    delay_percent_runtime: 'the agent has no runtime',
    abort_percent_runtime: 'the agent has no runtime',
    delay_duration_runtime: 'the agent has no runtime',
    abort_http_status_runtime: 'the agent has no runtime',
    max_active_faults_runtime: 'the agent has no runtime',
    response_rate_limit_percent_runtime: 'the agent has no runtime',
    abort_grpc_status_runtime: 'the agent has no runtime',
    filter_metadata: 'no dynamic metadata',
  });
  const out: NonNullable<RoutePolicy['fault']> = {};
  const d = f.delay as Msg | null | undefined;
  if (d) {
    if (String(d.fault_delay_secifier ?? '') !== 'fixed_delay') throw new XdsResourceError(`${where}: delay must be a fixed_delay (header_delay is not supported)`);
    out.delay = { ms: durationMs(d.fixed_delay, 0), fraction: fraction(`${where} delay`, d.percentage) };
  }
  const a = f.abort as Msg | null | undefined;
  if (a) {
    const kind = String(a.error_type ?? '');
    const abort: NonNullable<NonNullable<RoutePolicy['fault']>['abort']> = { fraction: fraction(`${where} abort`, a.percentage) };
    if (kind === 'http_status') {
      const s = Number(a.http_status);
      if (!(s >= 200 && s <= 599)) throw new XdsResourceError(`${where}: abort http_status ${s} is out of range 200-599`);
      abort.httpStatus = s;
    } else if (kind === 'grpc_status') {
      const g = Number(a.grpc_status);
      if (!(g >= 0 && g <= 16)) throw new XdsResourceError(`${where}: abort grpc_status ${g} is out of range 0-16`);
      abort.grpcStatus = g;
    } else throw new XdsResourceError(`${where}: abort must set http_status or grpc_status (header_abort is not supported)`);
    out.abort = abort;
  }
  return out.delay || out.abort ? out : undefined;
}

/** A route's typed_per_filter_config: only the fault filter's, as HTTPFault. */
function decodeFilterConfigs(where: string, configs: unknown, policy: RoutePolicy): void {
  for (const [name, any] of Object.entries((configs as Record<string, unknown> | null | undefined) ?? {})) {
    if (name !== HTTP_FAULT_FILTER || !isType(any, HTTP_FAULT_TYPE)) {
      throw new XdsResourceError(`${where}: typed_per_filter_config ${name} is not supported (only ${HTTP_FAULT_FILTER} with ${HTTP_FAULT_TYPE})`);
    }
    const fault = decodeHttpFault(`${where} ${name}`, decodeTyped(where, any));
    if (fault) policy.fault = fault;
  }
}

function decodeRetry(where: string, rp: Msg, policy: RoutePolicy): void {
  refuse(where, rp, {
    retry_priority: 'retries prefer endpoints not tried yet, whatever their priority',
    retry_host_predicate: 'the agent always applies the previous-hosts rule',
    retry_options_predicates: 'not supported',
    retriable_headers: 'retries are decided by status codes and conditions',
    retriable_request_headers: 'every request may be retried',
    rate_limited_retry_back_off: 'rate-limited retries are not supported',
    per_try_idle_timeout: 'use per_try_timeout',
  });
  if (String(rp.host_selection_retry_max_attempts ?? '0') !== '0') throw new XdsResourceError(`${where}: host_selection_retry_max_attempts is not supported (the agent always applies the previous-hosts rule)`);
  const on = String(rp.retry_on ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  const unknown = on.filter((x) => !(RETRY_ON as readonly string[]).includes(x));
  if (unknown.length > 0) throw new XdsResourceError(`${where}: retry_on ${unknown.join(', ')} is not supported (supported: ${RETRY_ON.join(', ')})`);
  const codes = ((rp.retriable_status_codes as unknown[] | undefined) ?? []).map(Number);
  const bad = codes.find((c) => !(c >= 100 && c <= 599));
  if (bad !== undefined) throw new XdsResourceError(`${where}: retriable_status_codes ${bad} is not an HTTP status`);
  // Envoy: a retry_policy without num_retries retries once.
  const n = (rp.num_retries as Msg | null | undefined)?.value;
  const retry: NonNullable<RoutePolicy['retry']> = { attempts: n === undefined || n === null ? 1 : Number(n), on, codes };
  const backoff = rp.retry_back_off as Msg | null | undefined;
  if (backoff) {
    const base = durationMs(backoff.base_interval, 0);
    if (base <= 0) throw new XdsResourceError(`${where}: retry_back_off needs a base_interval above 0`);
    retry.backoffBaseMs = base;
    if (backoff.max_interval) {
      const max = durationMs(backoff.max_interval, 0);
      if (max < base) throw new XdsResourceError(`${where}: retry_back_off max_interval is shorter than base_interval`);
      retry.backoffMaxMs = max;
    }
  }
  policy.retry = retry;
  if (rp.per_try_timeout) policy.perTryTimeoutMs = durationMs(rp.per_try_timeout, 0);
}

function decodeMirror(where: string, m: Msg): { cluster: string; fraction: number } {
  refuse(where, m, {
    cluster_header: 'name the mirror cluster',
    trace_sampled: 'tracing decides for itself',
    disable_shadow_host_suffix_append: 'mirrors carry the -shadow host suffix',
  });
  const cluster = String(m.cluster ?? '');
  if (!cluster) throw new XdsResourceError(`${where}: request mirror policy without a cluster`);
  const rf = m.runtime_fraction as Msg | null | undefined;
  if (rf && isSet(rf.runtime_key)) throw new XdsResourceError(`${where}: runtime_fraction.runtime_key is not supported (the agent has no runtime; give default_value)`);
  // Envoy: no runtime_fraction mirrors every request.
  return { cluster, fraction: rf ? fraction(`${where} runtime_fraction`, rf.default_value) : 1 };
}

function decodeHash(where: string, h: Msg): NonNullable<RoutePolicy['hash']>[number] {
  const kind = String(h.policy_specifier ?? '');
  if (h.terminal) throw new XdsResourceError(`${where}: terminal hash policies are not supported (the first policy that yields a key is used)`);
  switch (kind) {
    case 'header': {
      const x = h.header as Msg;
      if (x.regex_rewrite) throw new XdsResourceError(`${where}: header hash policy regex_rewrite is not supported`);
      return { kind: 'header', name: String(x.header_name ?? '').toLowerCase() };
    }
    case 'cookie': {
      const c = h.cookie as Msg;
      if (list(c, 'attributes').length > 0) throw new XdsResourceError(`${where}: cookie hash policy attributes are not supported`);
      const out: Extract<NonNullable<RoutePolicy['hash']>[number], { kind: 'cookie' }> = { kind: 'cookie', name: String(c.name ?? '') };
      if (c.ttl) out.ttlMs = durationMs(c.ttl, 0);
      if (isSet(c.path)) out.path = String(c.path);
      return out;
    }
    case 'connection_properties':
      if ((h.connection_properties as Msg).source_ip !== true) throw new XdsResourceError(`${where}: connection_properties hash policy needs source_ip true`);
      return { kind: 'sourceIp' };
    case 'query_parameter':
      return { kind: 'query', name: String((h.query_parameter as Msg).name ?? '') };
    default:
      throw new XdsResourceError(`${where}: hash policy ${kind || '(none)'} is not supported (header, cookie, connection_properties, query_parameter)`);
  }
}

/** The policy fields of a RouteAction (`a`) and of its Route (`r`: typed_per_filter_config), into `policy`. */
export function decodeRoutePolicy(where: string, r: Msg, a: Msg | null, policy: RoutePolicy): void {
  decodeFilterConfigs(where, r.typed_per_filter_config, policy);
  if (!a) return;
  if (a.timeout) policy.timeoutMs = durationMs(a.timeout, 0);
  if (a.retry_policy) decodeRetry(`${where} retry_policy`, a.retry_policy as Msg, policy);
  const mirrors = list(a, 'request_mirror_policies').map((m, i) => decodeMirror(`${where} request_mirror_policies[${i}]`, m));
  if (mirrors.length > 0) policy.mirrors = mirrors;
  const hash = list(a, 'hash_policy').map((h, i) => decodeHash(`${where} hash_policy[${i}]`, h));
  if (hash.length > 0) policy.hash = hash;
}
