// LDS on the agent, inbound: a node's listener -> its local workloads and each pod's security policy
// (mTLS mode from the chain metadata, network RBAC filters).

import { compilePolicy, type CompiledPolicy, type InboundPolicy, type PermissionRule, type PrincipalRule, type RuleSpec, type StringMatch } from '../state/authz';
import type { AgentResource, InboundWorkload } from './agent-resources';
import { decodeAny } from './protos';
import { nodemeshMeta, XdsResourceError, type Any, type Msg } from './decode-util';
import { METADATA_NAMESPACE, RBAC_TYPE, TYPE_URL_PREFIX } from './resource-types';

export function decodeInboundListener(name: string, l: Msg): AgentResource {
  const meta = nodemeshMeta(l.metadata);
  const workloads: InboundWorkload[] = [];
  const policies = new Map<string, InboundPolicy>();
  for (const fc of (l.filter_chains as Msg[] | undefined) ?? []) {
    const m = nodemeshMeta(fc.metadata);
    const w = { pod: String(m.pod ?? ''), namespace: String(m.namespace ?? ''), ip: String(m.ip ?? '') };
    workloads.push(w);
    const where = `listener ${name} chain ${String(fc.name ?? w.ip)}`;
    if (!w.ip) throw new XdsResourceError(`${where}: no pod IP in metadata ${METADATA_NAMESPACE}.ip`);
    policies.set(w.ip, decodeInboundPolicy(where, fc, m));
  }
  return { kind: 'inbound', node: String(meta.node ?? ''), workloads, policies };
}

/** One pod's chain: metadata `mtlsMode`, then network RBAC filters (DENY ones merge; at most one ALLOW). */
function decodeInboundPolicy(where: string, fc: Msg, meta: Record<string, unknown>): InboundPolicy {
  const mode = meta.mtlsMode ?? 'PERMISSIVE';
  if (mode !== 'STRICT' && mode !== 'PERMISSIVE') throw new XdsResourceError(`${where}: mtlsMode ${String(mode)} is not supported (STRICT, PERMISSIVE)`);
  const policy: InboundPolicy = { mtlsMode: mode, deny: [], allow: null };
  for (const f of (fc.filters as Msg[] | undefined) ?? []) {
    const tc = f.typed_config as Any | undefined;
    if (tc?.type_url !== TYPE_URL_PREFIX + RBAC_TYPE) continue;
    const rbac = decodeAny<Msg>(tc);
    if (rbac.matcher) throw new XdsResourceError(`${where}: RBAC with a matcher tree is not supported (use rules)`);
    const rules = rbac.rules as Msg | null | undefined;
    // Envoy: no rules means the filter enforces nothing (shadow_rules only log, so they are ignored too).
    if (!rules) continue;
    const action = String(rules.action ?? 'ALLOW');
    const compiled = decodeRbacPolicies(where, (rules.policies as Record<string, Msg> | undefined) ?? {});
    if (action === 'DENY') policy.deny.push(...compiled);
    else if (action === 'ALLOW') {
      // Two ALLOW filters would each have to pass (AND), which the one-list model cannot express.
      if (policy.allow !== null) throw new XdsResourceError(`${where}: more than one RBAC filter with action ALLOW is not supported`);
      policy.allow = compiled;
    } else throw new XdsResourceError(`${where}: RBAC action ${action} is not supported (ALLOW, DENY)`);
  }
  return policy;
}

/** Envoy policies named `ns.name[i]` (one per Istio rule) are grouped back into one policy `ns.name`. */
function decodeRbacPolicies(where: string, policies: Record<string, Msg>): CompiledPolicy[] {
  const groups = new Map<string, RuleSpec[]>();
  for (const [ruleName, p] of Object.entries(policies)) {
    const at = `${where}: RBAC policy ${ruleName}`;
    if (p.condition || p.checked_condition) throw new XdsResourceError(`${at}: CEL conditions are not supported`);
    const permissions = ((p.permissions as Msg[] | undefined) ?? []).map((x) => decodePermission(at, x));
    const principals = ((p.principals as Msg[] | undefined) ?? []).map((x) => decodePrincipal(at, x));
    if (permissions.length === 0 || principals.length === 0) throw new XdsResourceError(`${at}: needs at least one permission and one principal`);
    const name = /^(.*)\[\d+\]$/.exec(ruleName)?.[1] ?? ruleName;
    const list = groups.get(name) ?? [];
    list.push({ name: ruleName, permissions, principals });
    groups.set(name, list);
  }
  return [...groups].map(([name, rules]) => {
    try {
      return compilePolicy(name, rules);
    } catch (e) {
      throw new XdsResourceError(`${where}: RBAC policy ${name}: ${(e as Error).message}`);
    }
  });
}

function decodePermission(at: string, p: Msg): PermissionRule {
  const rule = String(p.rule ?? '');
  switch (rule) {
    case 'any':
      return { kind: 'any' };
    case 'destination_port':
      return { kind: 'port', port: Number(p.destination_port) };
    case 'destination_port_range': {
      const r = p.destination_port_range as Msg;
      return { kind: 'portRange', start: Number(r.start ?? 0), end: Number(r.end ?? 0) };
    }
    case 'not_rule':
      return { kind: 'not', rule: decodePermission(at, p.not_rule as Msg) };
    case 'and_rules':
    case 'or_rules': {
      const rules = (((p[rule] as Msg).rules as Msg[] | undefined) ?? []).map((x) => decodePermission(at, x));
      if (rules.length === 0) throw new XdsResourceError(`${at}: empty ${rule}`);
      return { kind: rule === 'and_rules' ? 'and' : 'or', rules };
    }
    default:
      throw new XdsResourceError(
        `${at}: permission ${rule || '(empty)'} is not supported; the agent enforces L4 only (any, destination_port, destination_port_range, and_rules, or_rules, not_rule)`,
      );
  }
}

function cidrOf(at: string, r: Msg): string {
  const prefix = String(r.address_prefix ?? '');
  const len = (r.prefix_len as Msg | null | undefined)?.value;
  if (!prefix) throw new XdsResourceError(`${at}: CIDR range without address_prefix`);
  return len === undefined || len === null ? prefix : `${prefix}/${Number(len)}`;
}

const NS_REGEX_HEAD = 'spiffe://[^/]+/ns/';
const NS_REGEX_TAIL = '/sa/[^/]+';
const ANY_CHARS = '[^/]*';
const NS_LABEL = /^[a-z0-9-]+$/;

/** Only the form nodemesh's control plane writes for namespaces (policy-rbac.ts namespaceRegex); no general RE2. */
function decodeNamespaceRegex(at: string, regex: string): StringMatch {
  if (regex.startsWith(NS_REGEX_HEAD) && regex.endsWith(NS_REGEX_TAIL)) {
    const seg = regex.slice(NS_REGEX_HEAD.length, regex.length - NS_REGEX_TAIL.length);
    if (seg === '[^/]+') return { kind: 'any', value: '' };
    if (NS_LABEL.test(seg)) return { kind: 'exact', value: seg };
    const head = seg.slice(0, -ANY_CHARS.length);
    if (seg.endsWith(ANY_CHARS) && NS_LABEL.test(head)) return { kind: 'prefix', value: head };
    const tail = seg.slice(ANY_CHARS.length);
    if (seg.startsWith(ANY_CHARS) && NS_LABEL.test(tail)) return { kind: 'suffix', value: tail };
  }
  throw new XdsResourceError(`${at}: principal_name safe_regex "${regex}" is not supported (only the namespace form ${NS_REGEX_HEAD}NS${NS_REGEX_TAIL})`);
}

function decodePrincipal(at: string, p: Msg): PrincipalRule {
  const id = String(p.identifier ?? '');
  switch (id) {
    case 'any':
      return { kind: 'any' };
    case 'authenticated': {
      const sm = (p.authenticated as Msg).principal_name as Msg | null | undefined;
      // Envoy: an absent principal_name matches any authenticated peer.
      if (!sm) return { kind: 'principal', match: { kind: 'any', value: '' } };
      if (sm.ignore_case) throw new XdsResourceError(`${at}: principal_name with ignore_case is not supported`);
      const kind = String(sm.match_pattern ?? '');
      if (kind === 'exact' || kind === 'prefix' || kind === 'suffix') return { kind: 'principal', match: { kind, value: String(sm[kind]) } };
      if (kind === 'safe_regex') return { kind: 'namespace', match: decodeNamespaceRegex(at, String((sm.safe_regex as Msg).regex ?? '')) };
      throw new XdsResourceError(`${at}: principal_name matcher ${kind || '(empty)'} is not supported (exact, prefix, suffix, namespace safe_regex)`);
    }
    case 'source_ip':
    case 'direct_remote_ip':
    case 'remote_ip':
      // Without PROXY protocol or L7 headers, all three are the connection's source address.
      return { kind: 'sourceIp', cidr: cidrOf(at, p[id] as Msg) };
    case 'not_id':
      return { kind: 'not', rule: decodePrincipal(at, p.not_id as Msg) };
    case 'and_ids':
    case 'or_ids': {
      const ids = (((p[id] as Msg).ids as Msg[] | undefined) ?? []).map((x) => decodePrincipal(at, x));
      if (ids.length === 0) throw new XdsResourceError(`${at}: empty ${id}`);
      return { kind: id === 'and_ids' ? 'and' : 'or', rules: ids };
    }
    default:
      throw new XdsResourceError(
        `${at}: principal ${id || '(empty)'} is not supported; the agent enforces L4 only (any, authenticated, source_ip, direct_remote_ip, remote_ip, and_ids, or_ids, not_id)`,
      );
  }
}

