// Istio AuthorizationPolicy -> Envoy RBAC (envoy.config.rbac.v3), in two views of the same policies:
// - the TCP view: network RBAC filters in a pod's inbound chain, for connections. Istio's rules for HTTP-only
//   fields (hosts, methods, paths and their not* forms, request.headers conditions) on TCP traffic: an ALLOW
//   rule that uses one never matches (it is left out), a DENY rule is kept with those fields left out (so it
//   denies more, never less);
// - the HTTP view: HTTP RBAC filters (envoy.filters.http.rbac) in the pod's http_connection_manager, for each
//   request, with every field.

import { anyOf, type AnyOf } from '../xds/protos';
import { HTTP_RBAC_FILTER, HTTP_RBAC_TYPE, RBAC_TYPE } from '../xds/resource-types';
import type { AuthorizationPolicyObject, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from './objects';
import { policyName, type WorkloadPolicy } from './policy';

export const RBAC_FILTER_NAME = 'envoy.filters.network.rbac';

export type RbacView = 'tcp' | 'http';

type Msg = Record<string, unknown>;

/** `ns.name[i]`: one Envoy RBAC policy per Istio rule, so a decision names the rule that made it. */
export function rbacPolicyName(p: AuthorizationPolicyObject, ruleIndex: number): string {
  return `${policyName(p)}[${ruleIndex}]`;
}

const SPIFFE = 'spiffe://';
const REQUEST_HEADER = /^request\.headers\[(.+)\]$/;

/**
 * Istio principals are SPIFFE IDs without the scheme (`cluster.local/ns/a/sa/b`); one `*` at either end.
 * `*` alone means "any authenticated peer", which for nodemesh is any SPIFFE ID.
 */
export function principalMatcher(p: string): Msg {
  const full = (s: string): string => (s.startsWith(SPIFFE) ? s : SPIFFE + s);
  if (p === '*') return { prefix: SPIFFE };
  if (p.startsWith('*')) return { suffix: p.slice(1) };
  if (p.endsWith('*')) return { prefix: full(p.slice(0, -1)) };
  return { exact: full(p) };
}

/**
 * A namespace condition matches the `/ns/<ns>/` segment of the peer's SPIFFE ID (as Istio does, with a regex),
 * so it never matches plaintext. Agents recognise exactly this form (see decodeNamespaceRegex in decode-rbac).
 */
export function namespaceRegex(ns: string): string {
  let seg: string;
  if (ns === '*') seg = '[^/]+';
  else if (ns.startsWith('*')) seg = `[^/]*${ns.slice(1)}`;
  else if (ns.endsWith('*')) seg = `${ns.slice(0, -1)}[^/]*`;
  else seg = ns;
  return `spiffe://[^/]+/ns/${seg}/sa/[^/]+`;
}

function cidrRange(block: string): Msg {
  const [ip, len] = block.split('/');
  return { address_prefix: ip, prefix_len: { value: len !== undefined ? Number(len) : ip.includes(':') ? 128 : 32 } };
}

/** Istio's value forms (exact, `x*`, `*x`; `*` is "present") as a StringMatcher; undefined for `*`. */
function wildcardMatcher(v: string, ignoreCase = false): Msg | undefined {
  if (v === '*') return undefined;
  const m: Msg = v.endsWith('*') ? { prefix: v.slice(0, -1) } : v.startsWith('*') ? { suffix: v.slice(1) } : { exact: v };
  if (ignoreCase) m.ignore_case = true;
  return m;
}

/** A header condition as an Envoy HeaderMatcher (`*`: present). */
function headerMatcher(name: string, v: string, ignoreCase = false): Msg {
  const sm = wildcardMatcher(v, ignoreCase);
  return sm ? { name, string_match: sm } : { name, present_match: true };
}

function anyOfIds(ids: Msg[]): Msg {
  return ids.length === 1 ? ids[0] : { or_ids: { ids } };
}

function allOfIds(ids: Msg[]): Msg {
  return ids.length === 1 ? ids[0] : { and_ids: { ids } };
}

function anyOfRules(rules: Msg[]): Msg {
  return rules.length === 1 ? rules[0] : { or_rules: { rules } };
}

function allOfRules(rules: Msg[]): Msg {
  return rules.length === 1 ? rules[0] : { and_rules: { rules } };
}

const principal = (v: string): Msg => ({ authenticated: { principal_name: principalMatcher(v) } });
const namespace = (v: string): Msg => ({ authenticated: { principal_name: { safe_regex: { regex: namespaceRegex(v) } } } });
const directIp = (v: string): Msg => ({ direct_remote_ip: cidrRange(v) });
const remoteIp = (v: string): Msg => ({ remote_ip: cidrRange(v) });
/** `ns/sa` in any trust domain: the end of the SPIFFE ID. */
const serviceAccount = (v: string): Msg => {
  const [ns, sa] = v.split('/');
  return { authenticated: { principal_name: { suffix: `/ns/${ns}/sa/${sa}` } } };
};
const port = (v: string | number): Msg => ({ destination_port: Number(v) });
const destinationIp = (v: string): Msg => ({ destination_ip: cidrRange(v) });
const method = (v: string): Msg => ({ header: headerMatcher(':method', v) });
/** Istio's hosts compare without case. */
const host = (v: string): Msg => ({ header: headerMatcher(':authority', v, true) });
const path = (v: string): Msg => ({ url_path: { path: wildcardMatcher(v) ?? { safe_regex: { regex: '.+' } } } });

/** values (any of) and notValues (none of), ANDed: the conditions one field contributes. */
function field<T>(values: T[] | undefined, notValues: T[] | undefined, one: (v: T) => Msg, kind: 'ids' | 'rules'): Msg[] {
  const any = kind === 'ids' ? anyOfIds : anyOfRules;
  const out: Msg[] = [];
  if (values) out.push(any(values.map(one)));
  if (notValues) out.push(kind === 'ids' ? { not_id: any(notValues.map(one)) } : { not_rule: any(notValues.map(one)) });
  return out;
}

function sourcePrincipal(s: AuthzSource): Msg[] {
  return [
    ...field(s.principals, s.notPrincipals, principal, 'ids'),
    ...field(s.namespaces, s.notNamespaces, namespace, 'ids'),
    ...field(s.ipBlocks, s.notIpBlocks, directIp, 'ids'),
    ...field(s.remoteIpBlocks, s.notRemoteIpBlocks, remoteIp, 'ids'),
    ...field(s.serviceAccounts, s.notServiceAccounts, serviceAccount, 'ids'),
  ];
}

function operationPermission(o: AuthzOperation, view: RbacView): Msg[] {
  const out = field(o.ports, o.notPorts, port, 'rules');
  if (view === 'http') {
    out.push(...field(o.hosts, o.notHosts, host, 'rules'), ...field(o.methods, o.notMethods, method, 'rules'), ...field(o.paths, o.notPaths, path, 'rules'));
  }
  return out;
}

/** One `when` condition: on the peer (principals) or on what is asked (permissions); HTTP-only ones in the HTTP view. */
function conditionIds(c: AuthzCondition, view: RbacView): { principals: Msg[]; permissions: Msg[] } {
  const header = REQUEST_HEADER.exec(c.key);
  if (header) {
    const name = header[1]!;
    return { principals: view === 'http' ? field(c.values, c.notValues, (v) => ({ header: headerMatcher(name, v) }), 'ids') : [], permissions: [] };
  }
  switch (c.key) {
    case 'source.ip':
      return { principals: field(c.values, c.notValues, directIp, 'ids'), permissions: [] };
    case 'remote.ip':
      return { principals: field(c.values, c.notValues, remoteIp, 'ids'), permissions: [] };
    case 'source.namespace':
      return { principals: field(c.values, c.notValues, namespace, 'ids'), permissions: [] };
    case 'source.principal':
      return { principals: field(c.values, c.notValues, principal, 'ids'), permissions: [] };
    case 'source.serviceAccount':
      return { principals: field(c.values, c.notValues, serviceAccount, 'ids'), permissions: [] };
    case 'destination.ip':
      return { principals: [], permissions: field(c.values, c.notValues, destinationIp, 'rules') };
    case 'destination.port':
      return { principals: [], permissions: field(c.values, c.notValues, port, 'rules') };
    default:
      // Validation admits no other key.
      throw new Error(`unsupported condition key ${c.key}`);
  }
}

/** Whether the rule uses a field only a request has (Istio's HTTP-only fields). */
export function usesHttpFields(rule: AuthzRule): boolean {
  const op = (o: AuthzOperation): boolean => !!(o.hosts || o.notHosts || o.methods || o.notMethods || o.paths || o.notPaths);
  return rule.to.some(op) || (rule.when ?? []).some((c) => REQUEST_HEADER.test(c.key));
}

/**
 * One rule: any `to` (OR) and any `from` (OR); inside each, every field must hold (AND), as Istio defines, and
 * every `when` condition too (ANDed into each `to` or each `from`, by what it is about).
 */
export function rbacPolicy(rule: AuthzRule, view: RbacView = 'tcp'): Msg {
  const when = (rule.when ?? []).map((c) => conditionIds(c, view));
  const whenPrincipals = when.flatMap((w) => w.principals);
  const whenPermissions = when.flatMap((w) => w.permissions);
  const perm = (conds: Msg[]): Msg => (conds.length === 0 ? { any: true } : allOfRules(conds));
  const prin = (conds: Msg[]): Msg => (conds.length === 0 ? { any: true } : allOfIds(conds));
  return {
    permissions: rule.to.length === 0 ? [perm(whenPermissions)] : rule.to.map((o) => perm([...operationPermission(o, view), ...whenPermissions])),
    principals: rule.from.length === 0 ? [prin(whenPrincipals)] : rule.from.map((s) => prin([...sourcePrincipal(s), ...whenPrincipals])),
  };
}

function rbacFilter(action: 'ALLOW' | 'DENY', policies: AuthorizationPolicyObject[], statPrefix: string, view: RbacView): { name: string; typed_config: AnyOf } {
  const rbac: Msg = {};
  for (const p of policies) {
    p.rules.forEach((r, i) => {
      // TCP view: an ALLOW rule that needs a request never matches a connection.
      if (view === 'tcp' && action === 'ALLOW' && usesHttpFields(r)) return;
      rbac[rbacPolicyName(p, i)] = rbacPolicy(r, view);
    });
  }
  const rules = { action, policies: rbac };
  const prefix = `${statPrefix}.${action.toLowerCase()}.`;
  return view === 'tcp'
    ? { name: RBAC_FILTER_NAME, typed_config: anyOf(RBAC_TYPE, { stat_prefix: prefix, rules }) }
    : { name: HTTP_RBAC_FILTER, typed_config: anyOf(HTTP_RBAC_TYPE, { rules_stat_prefix: prefix, rules }) };
}

/**
 * The RBAC filters of one pod in one view: a DENY filter with every DENY policy (none when no DENY policy
 * applies), then an ALLOW filter with every ALLOW policy (none when no ALLOW policy applies; an ALLOW policy
 * without rules adds no RBAC policy, so an ALLOW filter with an empty map is Istio's allow-nothing).
 */
export function buildRbacFilters(wp: WorkloadPolicy, statPrefix: string, view: RbacView = 'tcp'): { name: string; typed_config: AnyOf }[] {
  const out: { name: string; typed_config: AnyOf }[] = [];
  if (wp.deny.length > 0) out.push(rbacFilter('DENY', wp.deny, statPrefix, view));
  if (wp.allow.length > 0) out.push(rbacFilter('ALLOW', wp.allow, statPrefix, view));
  return out;
}
