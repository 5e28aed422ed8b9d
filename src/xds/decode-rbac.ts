// Envoy RBAC (envoy.config.rbac.v3, from network or HTTP RBAC filters) -> the agent's authorization rules.
//
// Network and HTTP filters carry the same rules; header and url_path conditions only ever match requests
// (state/authz.ts), as in Envoy, where a network filter cannot see them.

import { compilePolicy, ipInCidr, type CompiledPolicy, type PermissionRule, type PrincipalRule, type RuleSpec, type StringMatch } from '../state/authz';
import { list, XdsResourceError, type Msg } from './decode-util';

/** What decoding one pod's rules needs to know: the pod's own address (destination_ip is decided with it). */
export interface RbacContext {
  podIp: string;
}

/** Envoy policies named `ns.name[i]` (one per Istio rule) are grouped back into one policy `ns.name`. */
export function decodeRbacPolicies(where: string, policies: Record<string, Msg>, ctx: RbacContext): CompiledPolicy[] {
  const groups = new Map<string, RuleSpec[]>();
  for (const [ruleName, p] of Object.entries(policies)) {
    const at = `${where}: RBAC policy ${ruleName}`;
    if (p.condition || p.checked_condition) throw new XdsResourceError(`${at}: CEL conditions are not supported`);
    const permissions = list(p, 'permissions').map((x) => decodePermission(at, x, ctx));
    const principals = list(p, 'principals').map((x) => decodePrincipal(at, x));
    if (permissions.length === 0 || principals.length === 0) throw new XdsResourceError(`${at}: needs at least one permission and one principal`);
    const name = /^(.*)\[\d+\]$/.exec(ruleName)?.[1] ?? ruleName;
    const rules = groups.get(name) ?? [];
    rules.push({ name: ruleName, permissions, principals });
    groups.set(name, rules);
  }
  return [...groups].map(([name, rules]) => {
    try {
      return compilePolicy(name, rules);
    } catch (e) {
      throw new XdsResourceError(`${where}: RBAC policy ${name}: ${(e as Error).message}`);
    }
  });
}

/** A StringMatcher: exact, prefix, suffix, safe_regex (contains as a regex), with ignore_case. */
function stringMatch(at: string, sm: Msg): StringMatch {
  const kind = String(sm.match_pattern ?? '');
  const ignoreCase = sm.ignore_case === true;
  const out = (m: StringMatch): StringMatch => (ignoreCase ? { ...m, ignoreCase } : m);
  switch (kind) {
    case 'exact':
    case 'prefix':
    case 'suffix':
      return out({ kind, value: String(sm[kind]) });
    case 'safe_regex':
      return out({ kind: 'regex', value: String((sm.safe_regex as Msg | null)?.regex ?? '') });
    case 'contains':
      return out({ kind: 'regex', value: `.*${String(sm.contains).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}.*` });
    default:
      throw new XdsResourceError(`${at}: string matcher ${kind || '(empty)'} is not supported (exact, prefix, suffix, contains, safe_regex)`);
  }
}

/** An Envoy HeaderMatcher as a header rule (inverted: wrapped in not). */
function headerRule<T extends PermissionRule | PrincipalRule>(at: string, h: Msg): T {
  const name = String(h.name ?? '').toLowerCase();
  if (!name) throw new XdsResourceError(`${at}: header matcher without a name`);
  if (h.treat_missing_header_as_empty) throw new XdsResourceError(`${at}: header ${name}: treat_missing_header_as_empty is not supported`);
  const spec = String(h.header_match_specifier ?? '');
  let match: StringMatch;
  let invert = h.invert_match === true;
  if (spec === 'string_match') match = stringMatch(`${at}: header ${name}`, h.string_match as Msg);
  else if (spec === 'present_match') {
    match = { kind: 'any', value: '' };
    if (h.present_match === false) invert = !invert;
  } else if (spec === 'exact_match') match = { kind: 'exact', value: String(h.exact_match) };
  else if (spec === 'prefix_match') match = { kind: 'prefix', value: String(h.prefix_match) };
  else if (spec === 'suffix_match') match = { kind: 'suffix', value: String(h.suffix_match) };
  else if (spec === 'safe_regex_match') match = { kind: 'regex', value: String((h.safe_regex_match as Msg | null)?.regex ?? '') };
  else throw new XdsResourceError(`${at}: header ${name}: match ${spec || '(none)'} is not supported (string_match, present_match, exact, prefix, suffix, safe_regex)`);
  const rule = { kind: 'header' as const, name, match };
  return (invert ? { kind: 'not', rule } : rule) as T;
}

function cidrOf(at: string, r: Msg): string {
  const prefix = String(r.address_prefix ?? '');
  const len = (r.prefix_len as Msg | null | undefined)?.value;
  if (!prefix) throw new XdsResourceError(`${at}: CIDR range without address_prefix`);
  return len === undefined || len === null ? prefix : `${prefix}/${Number(len)}`;
}

function decodePermission(at: string, p: Msg, ctx: RbacContext): PermissionRule {
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
    case 'destination_ip': {
      // The chain serves one pod address: whether that address is in the range is known now.
      const range = cidrOf(at, p.destination_ip as Msg);
      let inside: boolean;
      try {
        inside = ipInCidr(ctx.podIp, range);
      } catch (e) {
        throw new XdsResourceError(`${at}: destination_ip: ${(e as Error).message}`);
      }
      return inside ? { kind: 'any' } : { kind: 'not', rule: { kind: 'any' } };
    }
    case 'header':
      return headerRule<PermissionRule>(at, p.header as Msg);
    case 'url_path': {
      const pm = p.url_path as Msg;
      if (String(pm.rule ?? 'path') !== 'path') throw new XdsResourceError(`${at}: url_path must use path`);
      return { kind: 'path', match: stringMatch(`${at}: url_path`, pm.path as Msg) };
    }
    case 'not_rule':
      return { kind: 'not', rule: decodePermission(at, p.not_rule as Msg, ctx) };
    case 'and_rules':
    case 'or_rules': {
      const rules = list(p[rule] as Msg, 'rules').map((x) => decodePermission(at, x, ctx));
      if (rules.length === 0) throw new XdsResourceError(`${at}: empty ${rule}`);
      return { kind: rule === 'and_rules' ? 'and' : 'or', rules };
    }
    default:
      throw new XdsResourceError(
        `${at}: permission ${rule || '(empty)'} is not supported (any, destination_port, destination_port_range, destination_ip, header, url_path, and_rules, or_rules, not_rule)`,
      );
  }
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
      // Without PROXY protocol or a trusted X-Forwarded-For, all three are the connection's source address.
      return { kind: 'sourceIp', cidr: cidrOf(at, p[id] as Msg) };
    case 'header':
      return headerRule<PrincipalRule>(at, p.header as Msg);
    case 'not_id':
      return { kind: 'not', rule: decodePrincipal(at, p.not_id as Msg) };
    case 'and_ids':
    case 'or_ids': {
      const ids = list(p[id] as Msg, 'ids').map((x) => decodePrincipal(at, x));
      if (ids.length === 0) throw new XdsResourceError(`${at}: empty ${id}`);
      return { kind: id === 'and_ids' ? 'and' : 'or', rules: ids };
    }
    default:
      throw new XdsResourceError(
        `${at}: principal ${id || '(empty)'} is not supported (any, authenticated, source_ip, direct_remote_ip, remote_ip, header, and_ids, or_ids, not_id)`,
      );
  }
}
