// Inbound security policy per local pod (mTLS mode; authorization rules in a TCP view and an HTTP view) and the
// decision for a connection (TCP view) or a request (HTTP view).

import { isIP } from 'node:net';
import { compileFullMatch } from '../util/regex';

/**
 * How a string condition compares (Istio: exact, `x*`, `*x`; `any` is a present value; `regex` a full match in
 * util/regex.ts syntax). `ignoreCase` compares lower case (Istio's hosts).
 */
export interface StringMatch {
  kind: 'exact' | 'prefix' | 'suffix' | 'any' | 'regex';
  value: string;
  ignoreCase?: boolean;
}

/**
 * A request header condition (HTTP only: never matches without a request). `:method`, `:authority` and `:path`
 * name the request's method, host and path with its query; other names are lower-case header names.
 */
export interface HeaderRule {
  kind: 'header';
  name: string;
  match: StringMatch;
}

/** Who is asking: conditions on the peer (its SPIFFE ID, its namespace, its address). */
export type PrincipalRule =
  | { kind: 'any' }
  /** The peer's SPIFFE ID; never matches plaintext. */
  | { kind: 'principal'; match: StringMatch }
  /** The `/ns/<ns>/` segment of the peer's SPIFFE ID; never matches plaintext. */
  | { kind: 'namespace'; match: StringMatch }
  /** Source address inside `cidr` (`ip/len`). */
  | { kind: 'sourceIp'; cidr: string }
  | HeaderRule
  | { kind: 'not'; rule: PrincipalRule }
  | { kind: 'and' | 'or'; rules: PrincipalRule[] };

/** What is asked for: the destination (original) port; for requests, their headers and path. */
export type PermissionRule =
  | { kind: 'any' }
  | { kind: 'port'; port: number }
  /** `start <= port < end` (Envoy's Int32Range). */
  | { kind: 'portRange'; start: number; end: number }
  | HeaderRule
  /** The request path without its query (Envoy's url_path; HTTP only). */
  | { kind: 'path'; match: StringMatch }
  | { kind: 'not'; rule: PermissionRule }
  | { kind: 'and' | 'or'; rules: PermissionRule[] };

/** One rule (an Envoy RBAC policy): matches when any permission and any principal match. */
export interface RuleSpec {
  name: string;
  permissions: PermissionRule[];
  principals: PrincipalRule[];
}

export interface AuthzRequest {
  /** The peer's SPIFFE ID (`spiffe://td/ns/x/sa/y`); null for plaintext. */
  principal: string | null;
  sourceIp: string;
  /** The original destination port. */
  destinationPort: number;
  /** Present for a request on a port the agent parses as HTTP: the HTTP view decides; absent, the TCP view. */
  http?: HttpAttributes;
}

/** What L7 rules see of one request. */
export interface HttpAttributes {
  method: string;
  /** The path as received, query included. */
  path: string;
  /** `:authority` / Host. */
  host: string;
  /** A request header's value (lists joined with ", "), by lower-case name. */
  header(name: string): string | undefined;
}

export interface AuthzDecision {
  allowed: boolean;
  /** The policy that decided (`ns.name`); null when no policy did (no policy applies, none matched, mTLS mode). */
  policy: string | null;
  reason: string;
}

/** Per-request view with lazily parsed parts, so a decision parses the address and the SPIFFE ID at most once. */
class Subject {
  private ip: ParsedIp | null | undefined;
  private ns: string | null | undefined;
  private urlPath: string | undefined;

  constructor(readonly req: AuthzRequest) {}

  /** The path without its query; undefined without a request. */
  path(): string | undefined {
    const http = this.req.http;
    if (!http) return undefined;
    if (this.urlPath === undefined) {
      const q = http.path.indexOf('?');
      this.urlPath = q < 0 ? http.path : http.path.slice(0, q);
    }
    return this.urlPath;
  }

  /** A header (pseudo-headers :method, :authority, :path included); undefined without a request or when absent. */
  header(name: string): string | undefined {
    const http = this.req.http;
    if (!http) return undefined;
    if (name === ':method') return http.method;
    if (name === ':authority' || name === 'host') return http.host;
    if (name === ':path') return http.path;
    return http.header(name);
  }

  address(): ParsedIp | null {
    if (this.ip === undefined) this.ip = parseIp(this.req.sourceIp);
    return this.ip;
  }

  namespace(): string | null {
    if (this.ns === undefined) {
      const m = this.req.principal === null ? null : /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(this.req.principal);
      this.ns = m ? m[1] : null;
    }
    return this.ns;
  }
}

type Matcher = (s: Subject) => boolean;

export interface CompiledRule extends RuleSpec {
  readonly matches: (s: Subject) => boolean;
}

/** One Istio policy: its rules, with matchers built once when the config arrives. */
export interface CompiledPolicy {
  /** `ns.name`. */
  name: string;
  rules: CompiledRule[];
}

/** DENY and ALLOW policies as one view (TCP or HTTP) sees them. */
export interface PolicyView {
  deny: CompiledPolicy[];
  /** null: no ALLOW policy applies (everything not denied is allowed); [] with no rules: allow nothing. */
  allow: CompiledPolicy[] | null;
}

export interface InboundPolicy extends PolicyView {
  mtlsMode: 'STRICT' | 'PERMISSIVE';
  /**
   * The HTTP view, for requests (Istio: every field applies). Absent: requests are judged by the TCP view above,
   * which is the same when no rule uses an HTTP-only field. The TCP view is Istio's for TCP traffic: ALLOW
   * rules with HTTP-only fields dropped, DENY rules with their HTTP-only fields dropped.
   */
  http?: PolicyView;
}

/** What a pod without any policy gets: Istio's defaults. */
export const DEFAULT_INBOUND_POLICY: InboundPolicy = Object.freeze({ mtlsMode: 'PERMISSIVE', deny: [], allow: null });

interface ParsedIp {
  v6: boolean;
  bits: bigint;
}

function parseIp(address: string): ParsedIp | null {
  // A link-local peer may come with its zone index (fe80::1%eth0): the address is what policies name.
  const ip = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; policies name them as IPv4.
  const s = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  const family = isIP(s);
  if (family === 4) {
    let bits = 0n;
    for (const part of s.split('.')) bits = (bits << 8n) | BigInt(Number(part));
    return { v6: false, bits };
  }
  if (family !== 6) return null;
  let head = s;
  if (s.includes('.')) {
    // An IPv4 tail (::1.2.3.4 and the like) becomes its two hex groups.
    const cut = s.lastIndexOf(':');
    const v4 = parseIp(s.slice(cut + 1))!;
    head = `${s.slice(0, cut + 1)}${(v4.bits >> 16n).toString(16)}:${(v4.bits & 0xffffn).toString(16)}`;
  }
  const [l, r] = head.split('::');
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const groups = head.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  let bits = 0n;
  for (const g of groups) bits = (bits << 16n) | BigInt(parseInt(g, 16));
  return { v6: true, bits };
}

function cidrMatcher(cidr: string): Matcher {
  const [addr, len] = cidr.split('/');
  if (addr.includes('%')) throw new Error(`"${cidr}": a range cannot carry a zone index (%...)`);
  const net = parseIp(addr);
  if (!net) throw new Error(`"${cidr}" is not an IP address or CIDR range`);
  const width = net.v6 ? 128 : 32;
  const prefix = len === undefined ? width : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) throw new Error(`"${cidr}": prefix length must be 0-${width}`);
  const shift = BigInt(width - prefix);
  const want = net.bits >> shift;
  return (s) => {
    const ip = s.address();
    return ip !== null && ip.v6 === net.v6 && ip.bits >> shift === want;
  };
}

/** Whether `ip` is inside `cidr` (`ip/len` or an address); throws on a malformed range. */
export function ipInCidr(ip: string, cidr: string): boolean {
  return cidrMatcher(cidr)(new Subject({ principal: null, sourceIp: ip, destinationPort: 0 }));
}

function stringMatcher(m: StringMatch): (v: string) => boolean {
  const x = m.ignoreCase ? m.value.toLowerCase() : m.value;
  const f = ((): ((v: string) => boolean) => {
    switch (m.kind) {
      case 'exact':
        return (v) => v === x;
      case 'prefix':
        return (v) => v.startsWith(x);
      case 'suffix':
        return (v) => v.endsWith(x);
      case 'any':
        return () => true;
      case 'regex': {
        // Throws (with what is wrong) on a pattern the agent cannot run: compilePolicy's callers NACK it.
        const full = compileFullMatch(m.value);
        const re = m.ignoreCase ? new RegExp(full.source, 'i') : full;
        return (v) => re.test(v);
      }
    }
  })();
  return m.ignoreCase && m.kind !== 'regex' ? (v) => f(v.toLowerCase()) : f;
}

/** HTTP-only conditions never match a connection (Envoy: a network filter cannot see headers). */
function headerMatcher(r: HeaderRule): Matcher {
  const f = stringMatcher(r.match);
  return (s) => {
    const v = s.header(r.name);
    return v !== undefined && f(v);
  };
}

function every(ms: Matcher[]): Matcher {
  return ms.length === 1 ? ms[0] : (s) => ms.every((m) => m(s));
}

function some(ms: Matcher[]): Matcher {
  return ms.length === 1 ? ms[0] : (s) => ms.some((m) => m(s));
}

function principalMatcher(r: PrincipalRule): Matcher {
  switch (r.kind) {
    case 'any':
      return () => true;
    case 'principal': {
      const f = stringMatcher(r.match);
      return (s) => s.req.principal !== null && f(s.req.principal);
    }
    case 'namespace': {
      const f = stringMatcher(r.match);
      return (s) => {
        const ns = s.namespace();
        return ns !== null && f(ns);
      };
    }
    case 'sourceIp':
      return cidrMatcher(r.cidr);
    case 'header':
      return headerMatcher(r);
    case 'not': {
      const m = principalMatcher(r.rule);
      return (s) => !m(s);
    }
    case 'and':
      return every(r.rules.map(principalMatcher));
    case 'or':
      return some(r.rules.map(principalMatcher));
  }
}

function permissionMatcher(r: PermissionRule): Matcher {
  switch (r.kind) {
    case 'any':
      return () => true;
    case 'port':
      return (s) => s.req.destinationPort === r.port;
    case 'portRange':
      return (s) => s.req.destinationPort >= r.start && s.req.destinationPort < r.end;
    case 'header':
      return headerMatcher(r);
    case 'path': {
      const f = stringMatcher(r.match);
      return (s) => {
        const p = s.path();
        return p !== undefined && f(p);
      };
    }
    case 'not': {
      const m = permissionMatcher(r.rule);
      return (s) => !m(s);
    }
    case 'and':
      return every(r.rules.map(permissionMatcher));
    case 'or':
      return some(r.rules.map(permissionMatcher));
  }
}

/** Builds the matchers of one policy; throws (with what is wrong) on a malformed address range or regex. */
export function compilePolicy(name: string, rules: RuleSpec[]): CompiledPolicy {
  return {
    name,
    rules: rules.map((r) => {
      // Envoy: an empty list matches nothing (it rejects such config; we fail closed the same way).
      const perm = r.permissions.length === 0 ? () => false : some(r.permissions.map(permissionMatcher));
      const who = r.principals.length === 0 ? () => false : some(r.principals.map(principalMatcher));
      return { ...r, matches: (s: Subject) => perm(s) && who(s) };
    }),
  };
}

function firstMatch(policies: CompiledPolicy[], s: Subject): { policy: CompiledPolicy; rule: CompiledRule } | null {
  for (const policy of policies) for (const rule of policy.rules) if (rule.matches(s)) return { policy, rule };
  return null;
}

/**
 * Istio's order: STRICT refuses plaintext; any matching DENY policy denies; with no ALLOW policy everything else is
 * allowed; otherwise a matching ALLOW policy is required. A request (`req.http`) is judged by the HTTP view, a
 * connection by the TCP view.
 */
export function authorize(policy: InboundPolicy, req: AuthzRequest): AuthzDecision {
  if (policy.mtlsMode === 'STRICT' && req.principal === null) {
    return { allowed: false, policy: null, reason: 'PeerAuthentication STRICT: plaintext connections are refused' };
  }
  const view: PolicyView = req.http && policy.http ? policy.http : policy;
  const s = new Subject(req);
  const denied = firstMatch(view.deny, s);
  if (denied) return { allowed: false, policy: denied.policy.name, reason: `denied by DENY policy ${denied.policy.name} (rule ${denied.rule.name})` };
  if (view.allow === null) return { allowed: true, policy: null, reason: 'no ALLOW policy applies' };
  const allowed = firstMatch(view.allow, s);
  if (allowed) return { allowed: true, policy: allowed.policy.name, reason: `allowed by ALLOW policy ${allowed.policy.name} (rule ${allowed.rule.name})` };
  return { allowed: false, policy: null, reason: 'no ALLOW policy matched' };
}

/** Normalizes a pod IP as a map key (IPv4-mapped IPv6 becomes IPv4). */
function ipKey(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The inbound policy of every local pod, by pod IP; replaced as a whole on each accepted inbound listener. */
export class AuthzStore {
  private byIp = new Map<string, InboundPolicy>();
  private readonly listeners = new Set<() => void>();

  replace(byPodIp: Map<string, InboundPolicy>): void {
    const next = new Map<string, InboundPolicy>();
    for (const [ip, p] of byPodIp) next.set(ipKey(ip), p);
    this.byIp = next;
    for (const fn of this.listeners) fn();
  }

  /** The pod's policy, or the default (PERMISSIVE, allow all) for a pod the control plane sent nothing for. */
  forPodIp(ip: string): InboundPolicy {
    return this.byIp.get(ipKey(ip)) ?? DEFAULT_INBOUND_POLICY;
  }

  /** Pod IPs with a policy, for debug views. */
  entries(): IterableIterator<[string, InboundPolicy]> {
    return this.byIp.entries();
  }

  /**
   * `fn` runs synchronously after every replace (e.g. to re-check open connections against the new policy);
   * returns an unsubscribe function.
   */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
