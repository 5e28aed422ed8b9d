// Validates Istio AuthorizationPolicy and PeerAuthentication (security.istio.io) into typed objects, L4 attributes only.

import { isIP } from 'node:net';
import type {
  AuthorizationPolicyObject,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  MtlsMode,
  ObjectMeta,
  PeerAuthenticationObject,
} from './objects';
import type { Checker, FieldPath, Json } from './checker';

/** Fields that need the request (HTTP) or a proxy header: rejected until nodemesh runs L7. */
const L7_SOURCE = ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks'];
const L7_OPERATION = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];
const L4_SOURCE = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const;

function l7Message(field: string): string {
  return `"${field}" is an L7 attribute; L7 attributes are not supported yet (nodemesh authorizes at L4: principals, namespaces, ipBlocks, ports)`;
}

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
  const family = isIP(ip);
  if (family === 0 || extra !== undefined) return `"${s}" is not an IP address or CIDR range`;
  if (len === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(len) || Number(len) > max) return `"${s}": prefix length must be 0-${max}`;
  return undefined;
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

function source(c: Checker, v: unknown, path: FieldPath): AuthzSource {
  const out: AuthzSource = {};
  const m = c.map(v, path, true);
  if (!m) return out;
  const before = c.issues.length;
  for (const k of Object.keys(m)) {
    if (L7_SOURCE.includes(k)) c.fail([...path, k], l7Message(k));
    else if (!(L4_SOURCE as readonly string[]).includes(k)) c.fail([...path, k], `unknown field (known: ${L4_SOURCE.join(', ')})`);
  }
  out.principals = stringList(c, m.principals, [...path, 'principals'], wildcard('principal'));
  out.notPrincipals = stringList(c, m.notPrincipals, [...path, 'notPrincipals'], wildcard('principal'));
  out.namespaces = stringList(c, m.namespaces, [...path, 'namespaces'], namespacePattern);
  out.notNamespaces = stringList(c, m.notNamespaces, [...path, 'notNamespaces'], namespacePattern);
  out.ipBlocks = stringList(c, m.ipBlocks, [...path, 'ipBlocks'], cidr);
  out.notIpBlocks = stringList(c, m.notIpBlocks, [...path, 'notIpBlocks'], cidr);
  for (const k of L4_SOURCE) if (out[k] === undefined) delete out[k];
  if (Object.keys(out).length === 0 && c.issues.length === before) {
    c.fail(path, 'must set at least one of principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks');
  }
  return out;
}

function operation(c: Checker, v: unknown, path: FieldPath): AuthzOperation {
  const out: AuthzOperation = {};
  const m = c.map(v, path, true);
  if (!m) return out;
  const before = c.issues.length;
  for (const k of Object.keys(m)) {
    if (L7_OPERATION.includes(k)) c.fail([...path, k], l7Message(k));
    else if (k !== 'ports' && k !== 'notPorts') c.fail([...path, k], 'unknown field (known: ports, notPorts)');
  }
  const p = ports(c, m.ports, [...path, 'ports']);
  const np = ports(c, m.notPorts, [...path, 'notPorts']);
  if (p) out.ports = p;
  if (np) out.notPorts = np;
  if (!p && !np && c.issues.length === before) c.fail(path, 'must set ports or notPorts');
  return out;
}

function rule(c: Checker, v: unknown, path: FieldPath): AuthzRule {
  const r: AuthzRule = { from: [], to: [] };
  const m = c.map(v, path, true);
  if (!m) return r;
  unknownFields(c, m, path, ['from', 'to', 'when']);
  if (m.when !== undefined) c.fail([...path, 'when'], 'conditions ("when") are not supported yet; express L4 conditions with from.source and to.operation');
  c.array(m.from, [...path, 'from'], false).forEach((raw, i) => {
    const fp: FieldPath = [...path, 'from', i];
    const f = c.map(raw, fp, true);
    if (!f) return;
    unknownFields(c, f, fp, ['source']);
    const s = source(c, f.source, [...fp, 'source']);
    r.from.push(s);
  });
  c.array(m.to, [...path, 'to'], false).forEach((raw, i) => {
    const tp: FieldPath = [...path, 'to', i];
    const t = c.map(raw, tp, true);
    if (!t) return;
    unknownFields(c, t, tp, ['operation']);
    r.to.push(operation(c, t.operation, [...tp, 'operation']));
  });
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
  const rules = c.array(spec.rules, ['spec', 'rules'], false).map((raw, i) => rule(c, raw, ['spec', 'rules', i]));
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
