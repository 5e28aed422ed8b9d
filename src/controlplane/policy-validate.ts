// Validates Istio AuthorizationPolicy and PeerAuthentication (security.istio.io) into typed objects: sources,
// operations (ports, and the HTTP fields hosts, methods, paths) and `when` conditions nodemesh can evaluate.

import type {
  AuthorizationPolicyObject,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  MtlsMode,
  ObjectMeta,
  PeerAuthenticationObject,
} from './objects';
import type { Checker, FieldPath, Json } from './checker';
import { ipFamily, notAnAddress } from '../util/ip';

const JWT = 'needs request authentication (JWT, RequestAuthentication), which nodemesh does not support';
/** Fields that need what nodemesh does not have, with why. */
const UNSUPPORTED_SOURCE: Record<string, string> = {
  requestPrincipals: JWT,
  notRequestPrincipals: JWT,
  trustDomains: 'is not supported yet; match principals ("<trust domain>/*")',
  notTrustDomains: 'is not supported yet; match notPrincipals ("<trust domain>/*")',
};
const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'serviceAccounts',
  'notServiceAccounts',
] as const;
const OPERATION_FIELDS = ['ports', 'notPorts', 'hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

function unknownFields(c: Checker, m: Json, path: FieldPath, known: readonly string[]): void {
  for (const k of Object.keys(m)) if (!known.includes(k)) c.fail([...path, k], `unknown field (known: ${known.join(', ')})`);
}

/** `selector.matchLabels`; an absent or empty selector means the whole namespace. */
function selector(c: Checker, spec: Json): Record<string, string> | undefined {
  const sel = c.map(spec.selector, ['spec', 'selector'], false);
  if (!sel) return undefined;
  unknownFields(c, sel, ['spec', 'selector'], ['matchLabels']);
  const labels = c.stringMap(sel.matchLabels, ['spec', 'selector', 'matchLabels']);
  return Object.keys(labels).length > 0 ? labels : undefined;
}

/** A list of non-empty strings, each checked by `check` (which returns an error message or undefined). */
function stringList(c: Checker, v: unknown, path: FieldPath, check: (s: string) => string | undefined): string[] | undefined {
  const out: string[] = [];
  c.array(v, path, false).forEach((raw, i) => {
    const s = c.string(raw, [...path, i], true);
    if (s === undefined) return;
    const err = s === '' ? 'must not be empty' : check(s);
    if (err) c.fail([...path, i], err);
    else out.push(s);
  });
  // Istio cannot tell an empty list from an absent one (proto repeated fields), so neither do we.
  return out.length > 0 ? out : undefined;
}

/** Istio allows one `*`, at the start or the end (or alone): exact, suffix, prefix, presence. */
function wildcard(what: string): (s: string) => string | undefined {
  return (s) => {
    const stars = s.split('*').length - 1;
    if (stars === 0 || s === '*') return undefined;
    if (stars === 1 && (s.startsWith('*') || s.endsWith('*'))) return undefined;
    return `"${s}": a ${what} may hold one "*", only at the start or the end`;
  };
}

const NAMESPACE_PATTERN = /^\*?[a-z0-9-]*\*?$/;

function namespacePattern(s: string): string | undefined {
  const w = wildcard('namespace')(s);
  if (w) return w;
  return NAMESPACE_PATTERN.test(s) ? undefined : `"${s}" is not a namespace (a DNS label, optionally with a leading or trailing "*")`;
}

function cidr(s: string): string | undefined {
  const [ip, len, extra] = s.split('/');
  const family = ipFamily(ip);
  if (family === 0 && ip.includes('%')) return notAnAddress(ip);
  if (family === 0 || extra !== undefined) return `"${s}" is not an IP address or CIDR range`;
  if (len === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(len) || Number(len) > max) return `"${s}": prefix length must be 0-${max}`;
  return undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `namespace/name` or `name` (the policy's namespace); no wildcard (Istio). Normalized to `namespace/name`. */
function serviceAccount(s: string): string | undefined {
  const parts = s.split('/');
  if (parts.length > 2 || parts.some((p) => !DNS_LABEL.test(p))) return `"${s}" is not a service account ("namespace/name" or "name", no wildcard)`;
  return undefined;
}

function qualify(namespace: string, list: string[] | undefined): string[] | undefined {
  return list?.map((s) => (s.includes('/') ? s : `${namespace}/${s}`));
}

/** Paths: exact, `prefix*`, `*suffix`, or `*`; must start with "/" unless they start with "*" (Istio). */
function pathPattern(s: string): string | undefined {
  if (/[{}]/.test(s)) return `"${s}": path templates ({*}, {**}) are not supported yet; use "prefix*" or "*suffix"`;
  const w = wildcard('path')(s);
  if (w) return w;
  if (!s.startsWith('/') && !s.startsWith('*')) return `"${s}" must start with "/" (or "*" for a suffix match)`;
  return undefined;
}

function hostPattern(s: string): string | undefined {
  const w = wildcard('host')(s);
  if (w) return w;
  return /[\s/]/.test(s) ? `"${s}" is not a host (no spaces or "/")` : undefined;
}

function methodName(s: string): string | undefined {
  if (s === '*') return undefined;
  return /^[A-Za-z]+$/.test(s) ? undefined : `"${s}" is not an HTTP method`;
}

function portString(s: string): string | undefined {
  return /^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 65535 ? undefined : `"${s}" is not a port number 1-65535`;
}

function ports(c: Checker, v: unknown, path: FieldPath): number[] | undefined {
  const out: number[] = [];
  c.array(v, path, false).forEach((raw, i) => {
    // Istio writes ports as strings ("8080"); a bare YAML number is accepted too.
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
    const p = c.port(n, [...path, i], true);
    if (p !== undefined) out.push(p);
  });
  return out.length > 0 ? out : undefined;
}

function source(c: Checker, v: unknown, path: FieldPath, namespace: string): AuthzSource {
  const out: AuthzSource = {};
  const m = c.map(v, path, true);
  if (!m) return out;
  const before = c.issues.length;
  for (const k of Object.keys(m)) {
    if (UNSUPPORTED_SOURCE[k]) c.fail([...path, k], `"${k}" ${UNSUPPORTED_SOURCE[k]}`);
    else if (!(SOURCE_FIELDS as readonly string[]).includes(k)) c.fail([...path, k], `unknown field (known: ${SOURCE_FIELDS.join(', ')})`);
  }
  out.principals = stringList(c, m.principals, [...path, 'principals'], wildcard('principal'));
  out.notPrincipals = stringList(c, m.notPrincipals, [...path, 'notPrincipals'], wildcard('principal'));
  out.namespaces = stringList(c, m.namespaces, [...path, 'namespaces'], namespacePattern);
  out.notNamespaces = stringList(c, m.notNamespaces, [...path, 'notNamespaces'], namespacePattern);
  out.ipBlocks = stringList(c, m.ipBlocks, [...path, 'ipBlocks'], cidr);
  out.notIpBlocks = stringList(c, m.notIpBlocks, [...path, 'notIpBlocks'], cidr);
  out.remoteIpBlocks = stringList(c, m.remoteIpBlocks, [...path, 'remoteIpBlocks'], cidr);
  out.notRemoteIpBlocks = stringList(c, m.notRemoteIpBlocks, [...path, 'notRemoteIpBlocks'], cidr);
  out.serviceAccounts = qualify(namespace, stringList(c, m.serviceAccounts, [...path, 'serviceAccounts'], serviceAccount));
  out.notServiceAccounts = qualify(namespace, stringList(c, m.notServiceAccounts, [...path, 'notServiceAccounts'], serviceAccount));
  for (const k of SOURCE_FIELDS) if (out[k] === undefined) delete out[k];
  if ((out.serviceAccounts || out.notServiceAccounts) && (out.principals || out.notPrincipals || out.namespaces || out.notNamespaces)) {
    c.fail(path, 'serviceAccounts cannot be set with principals or namespaces (Istio)');
  }
  if (Object.keys(out).length === 0 && c.issues.length === before) c.fail(path, `must set at least one of ${SOURCE_FIELDS.join(', ')}`);
  return out;
}

function operation(c: Checker, v: unknown, path: FieldPath): AuthzOperation {
  const out: AuthzOperation = {};
  const m = c.map(v, path, true);
  if (!m) return out;
  const before = c.issues.length;
  unknownFields(c, m, path, OPERATION_FIELDS);
  const p = ports(c, m.ports, [...path, 'ports']);
  const np = ports(c, m.notPorts, [...path, 'notPorts']);
  if (p) out.ports = p;
  if (np) out.notPorts = np;
  for (const [field, check] of [
    ['hosts', hostPattern],
    ['notHosts', hostPattern],
    ['methods', methodName],
    ['notMethods', methodName],
    ['paths', pathPattern],
    ['notPaths', pathPattern],
  ] as const) {
    const list = stringList(c, m[field], [...path, field], check);
    if (list) out[field] = list;
  }
  if (Object.keys(out).length === 0 && c.issues.length === before) c.fail(path, `must set at least one of ${OPERATION_FIELDS.join(', ')}`);
  return out;
}

/** The `when` keys nodemesh evaluates, with how their values are checked. */
const CONDITION_KEYS: Record<string, (s: string) => string | undefined> = {
  'source.ip': cidr,
  'remote.ip': cidr,
  'source.namespace': namespacePattern,
  'source.principal': wildcard('principal'),
  'source.serviceAccount': serviceAccount,
  'destination.ip': cidr,
  'destination.port': portString,
};
/** A request header: `request.headers[Name]`. */
const HEADER_KEY = /^request\.headers\[([A-Za-z0-9!#$%&'*+\-.^_`|~]+)\]$/;

function conditionKeyProblem(key: string): string | undefined {
  if (key.startsWith('request.auth.')) return `"${key}" ${JWT}`;
  if (key === 'connection.sni') return '"connection.sni" is not available: the agent sees the mesh connection, not the client\'s own TLS';
  if (key.startsWith('experimental.')) return `"${key}" is not supported (nodemesh has no Envoy filter metadata)`;
  return `unknown key "${key}" (supported: request.headers[<name>], ${Object.keys(CONDITION_KEYS).join(', ')})`;
}

function condition(c: Checker, v: unknown, path: FieldPath, namespace: string): AuthzCondition | undefined {
  const m = c.map(v, path, true);
  if (!m) return undefined;
  unknownFields(c, m, path, ['key', 'values', 'notValues']);
  const key = c.string(m.key, [...path, 'key'], true);
  if (key === undefined) return undefined;
  const header = HEADER_KEY.exec(key);
  let check: ((s: string) => string | undefined) | undefined;
  if (header) check = wildcard('header value');
  else if (CONDITION_KEYS[key]) check = CONDITION_KEYS[key];
  else {
    c.fail([...path, 'key'], conditionKeyProblem(key)!);
    return undefined;
  }
  const out: AuthzCondition = { key: header ? `request.headers[${header[1]!.toLowerCase()}]` : key };
  const values = stringList(c, m.values, [...path, 'values'], check);
  const notValues = stringList(c, m.notValues, [...path, 'notValues'], check);
  if (!values && !notValues) {
    c.fail(path, 'must set values or notValues');
    return undefined;
  }
  if (values) out.values = key === 'source.serviceAccount' ? qualify(namespace, values) : values;
  if (notValues) out.notValues = key === 'source.serviceAccount' ? qualify(namespace, notValues) : notValues;
  return out;
}

function rule(c: Checker, v: unknown, path: FieldPath, namespace: string): AuthzRule {
  const r: AuthzRule = { from: [], to: [] };
  const m = c.map(v, path, true);
  if (!m) return r;
  unknownFields(c, m, path, ['from', 'to', 'when']);
  c.array(m.from, [...path, 'from'], false).forEach((raw, i) => {
    const fp: FieldPath = [...path, 'from', i];
    const f = c.map(raw, fp, true);
    if (!f) return;
    unknownFields(c, f, fp, ['source']);
    r.from.push(source(c, f.source, [...fp, 'source'], namespace));
  });
  c.array(m.to, [...path, 'to'], false).forEach((raw, i) => {
    const tp: FieldPath = [...path, 'to', i];
    const t = c.map(raw, tp, true);
    if (!t) return;
    unknownFields(c, t, tp, ['operation']);
    r.to.push(operation(c, t.operation, [...tp, 'operation']));
  });
  const when: AuthzCondition[] = [];
  c.array(m.when, [...path, 'when'], false).forEach((raw, i) => {
    const cond = condition(c, raw, [...path, 'when', i], namespace);
    if (cond) when.push(cond);
  });
  if (when.length > 0) r.when = when;
  return r;
}

export function validateAuthorizationPolicy(c: Checker, doc: Json, meta: ObjectMeta): AuthorizationPolicyObject {
  const spec = c.map(doc.spec, ['spec'], false) ?? {};
  unknownFields(c, spec, ['spec'], ['selector', 'action', 'rules', 'targetRef', 'targetRefs', 'provider']);
  for (const k of ['targetRef', 'targetRefs']) {
    if (spec[k] !== undefined) c.fail(['spec', k], 'is not supported yet (it attaches policy to waypoints and gateways); use selector');
  }
  if (spec.provider !== undefined) c.fail(['spec', 'provider'], 'is only used by action CUSTOM, which is not supported');
  const action = c.string(spec.action, ['spec', 'action'], false) ?? 'ALLOW';
  if (action === 'AUDIT' || action === 'CUSTOM') {
    c.fail(['spec', 'action'], `${action} is not supported (supported: ALLOW, DENY)`);
  } else if (action !== 'ALLOW' && action !== 'DENY') {
    c.fail(['spec', 'action'], `must be ALLOW or DENY, got "${action}"`);
  }
  const rules = c.array(spec.rules, ['spec', 'rules'], false).map((raw, i) => rule(c, raw, ['spec', 'rules', i], meta.namespace));
  return { kind: 'AuthorizationPolicy', meta, action: action === 'DENY' ? 'DENY' : 'ALLOW', selector: selector(c, spec), rules };
}

const MODES: MtlsMode[] = ['STRICT', 'PERMISSIVE', 'UNSET', 'DISABLE'];

export function validatePeerAuthentication(c: Checker, doc: Json, meta: ObjectMeta): PeerAuthenticationObject {
  const spec = c.map(doc.spec, ['spec'], false) ?? {};
  unknownFields(c, spec, ['spec'], ['selector', 'mtls', 'portLevelMtls']);
  if (spec.portLevelMtls !== undefined) c.fail(['spec', 'portLevelMtls'], 'is not supported yet; set mtls.mode for the whole workload');
  let mode: MtlsMode = 'UNSET';
  const mtls = c.map(spec.mtls, ['spec', 'mtls'], false);
  if (mtls) {
    unknownFields(c, mtls, ['spec', 'mtls'], ['mode']);
    const m = c.string(mtls.mode, ['spec', 'mtls', 'mode'], false);
    if (m !== undefined && !(MODES as string[]).includes(m)) c.fail(['spec', 'mtls', 'mode'], `must be one of ${MODES.join(', ')}, got "${m}"`);
    else if (m !== undefined) mode = m as MtlsMode;
  }
  const sel = selector(c, spec);
  return { kind: 'PeerAuthentication', meta, selector: sel, mode };
}
