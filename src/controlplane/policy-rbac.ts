// Istio AuthorizationPolicy -> Envoy network RBAC filters (envoy.config.rbac.v3), the shape Istio itself generates.

import { anyOf, type AnyOf } from '../xds/protos';
import { RBAC_TYPE } from '../xds/resource-types';
import type { AuthorizationPolicyObject, AuthzOperation, AuthzRule, AuthzSource } from './objects';
import { policyName, type WorkloadPolicy } from './policy';

export const RBAC_FILTER_NAME = 'envoy.filters.network.rbac';

type Msg = Record<string, unknown>;

/** `ns.name[i]`: one Envoy RBAC policy per Istio rule, so a decision names the rule that made it. */
export function rbacPolicyName(p: AuthorizationPolicyObject, ruleIndex: number): string {
  return `${policyName(p)}[${ruleIndex}]`;
}

const SPIFFE = 'spiffe://';

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
 * so it never matches plaintext. Agents recognise exactly this form (see decodeNamespaceRegex in agent-resources).
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

function anyOfIds(ids: Msg[]): Msg {
  return ids.length === 1 ? ids[0] : { or_ids: { ids } };
}

function allOfIds(ids: Msg[]): Msg {
  return ids.length === 1 ? ids[0] : { and_ids: { ids } };
}

function sourcePrincipal(s: AuthzSource): Msg {
  const conds: Msg[] = [];
  const add = (values: string[] | undefined, negate: boolean, one: (v: string) => Msg): void => {
    if (!values) return;
    const id = anyOfIds(values.map(one));
    conds.push(negate ? { not_id: id } : id);
  };
  const principal = (v: string): Msg => ({ authenticated: { principal_name: principalMatcher(v) } });
  const namespace = (v: string): Msg => ({ authenticated: { principal_name: { safe_regex: { regex: namespaceRegex(v) } } } });
  const ip = (v: string): Msg => ({ direct_remote_ip: cidrRange(v) });
  add(s.principals, false, principal);
  add(s.notPrincipals, true, principal);
  add(s.namespaces, false, namespace);
  add(s.notNamespaces, true, namespace);
  add(s.ipBlocks, false, ip);
  add(s.notIpBlocks, true, ip);
  return conds.length === 0 ? { any: true } : allOfIds(conds);
}

function operationPermission(o: AuthzOperation): Msg {
  const conds: Msg[] = [];
  const ports = (list: number[]): Msg => {
    const rules = list.map((p) => ({ destination_port: p }));
    return rules.length === 1 ? rules[0] : { or_rules: { rules } };
  };
  if (o.ports) conds.push(ports(o.ports));
  if (o.notPorts) conds.push({ not_rule: ports(o.notPorts) });
  if (conds.length === 0) return { any: true };
  return conds.length === 1 ? conds[0] : { and_rules: { rules: conds } };
}

/** One rule: any `to` (OR) and any `from` (OR); inside each, every field must hold (AND), as Istio defines. */
export function rbacPolicy(rule: AuthzRule): Msg {
  return {
    permissions: rule.to.length === 0 ? [{ any: true }] : rule.to.map(operationPermission),
    principals: rule.from.length === 0 ? [{ any: true }] : rule.from.map(sourcePrincipal),
  };
}

function rbacFilter(action: 'ALLOW' | 'DENY', policies: AuthorizationPolicyObject[], statPrefix: string): { name: string; typed_config: AnyOf } {
  const rbac: Msg = {};
  for (const p of policies) p.rules.forEach((r, i) => (rbac[rbacPolicyName(p, i)] = rbacPolicy(r)));
  return {
    name: RBAC_FILTER_NAME,
    typed_config: anyOf(RBAC_TYPE, { stat_prefix: `${statPrefix}.${action.toLowerCase()}.`, rules: { action, policies: rbac } }),
  };
}

/**
 * The RBAC filters of one pod's inbound chain: a DENY filter with every DENY policy (none when no DENY policy
 * applies), then an ALLOW filter with every ALLOW policy (none when no ALLOW policy applies; an ALLOW policy
 * without rules adds no RBAC policy, so an ALLOW filter with an empty map is Istio's allow-nothing).
 */
export function buildRbacFilters(wp: WorkloadPolicy, statPrefix: string): { name: string; typed_config: AnyOf }[] {
  const out: { name: string; typed_config: AnyOf }[] = [];
  if (wp.deny.length > 0) out.push(rbacFilter('DENY', wp.deny, statPrefix));
  if (wp.allow.length > 0) out.push(rbacFilter('ALLOW', wp.allow, statPrefix));
  return out;
}
