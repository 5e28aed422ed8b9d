// Gateway API route status as the control plane computes it: per Service parentRef, Accepted and ResolvedRefs.

import type { ConfigIssue } from '../errors';
import { formatIssue } from '../errors';
import type { ParentRef, RouteKind } from './route-objects';

/** What nodemesh writes as `status.parents[].controllerName` (and the entries it owns there). */
export const ROUTE_CONTROLLER = 'nodemesh.io/mesh-controller';

export interface RouteCondition {
  type: 'Accepted' | 'ResolvedRefs';
  status: 'True' | 'False';
  /** Gateway API reasons: Accepted, NoMatchingParent, UnsupportedValue, Conflicted; ResolvedRefs, BackendNotFound, InvalidKind. */
  reason: string;
  message: string;
  observedGeneration?: number;
}

export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: RouteCondition[];
}

export interface RouteStatus {
  /** `HTTPRoute/ns/name`. */
  key: string;
  kind: RouteKind;
  namespace: string;
  name: string;
  /** The generation these conditions describe (API-server objects). */
  generation?: number;
  /** Where the route came from (file:line, or the API path). */
  origin?: { file: string; line: number };
  /**
   * The latest version failed validation: these are its problems. The last good version, when there is one, is
   * still served and `parents` describe it, with Accepted=False saying so.
   */
  invalid?: ConfigIssue[];
  parents: RouteParentStatus[];
}

export function condition(type: RouteCondition['type'], ok: boolean, reason: string, message: string, generation?: number): RouteCondition {
  const c: RouteCondition = { type, status: ok ? 'True' : 'False', reason, message };
  if (generation !== undefined) c.observedGeneration = generation;
  return c;
}

/** Accepted=False for a route whose latest version is invalid: the issues, and whether an older version still runs. */
export function invalidCondition(issues: ConfigIssue[], lastGoodServed: boolean, generation?: number): RouteCondition {
  const what = issues.map(formatIssue).join('; ');
  const then = lastGoodServed ? '; the last good version of this route is still served' : '; nothing of this route is served';
  return condition('Accepted', false, 'UnsupportedValue', `invalid: ${what}${then}`, generation);
}

/** `Service ns/name port 80` for messages. */
export function describeParent(p: ParentRef): string {
  const kind = p.group ? `${p.kind}.${p.group}` : p.kind;
  let s = `${kind} ${p.namespace}/${p.name}`;
  if (p.port !== undefined) s += ` port ${p.port}`;
  if (p.sectionName !== undefined) s += ` section ${p.sectionName}`;
  return s;
}

/** Route status as text, one block per route: what `nodemesh controlplane status` and `lab status` print. */
export function formatRouteStatus(statuses: RouteStatus[]): string {
  if (statuses.length === 0) return 'no HTTPRoutes or GRPCRoutes';
  const out: string[] = [];
  for (const s of statuses) {
    const where = s.origin ? ` (${s.origin.file}${s.origin.line > 0 ? `:${s.origin.line}` : ''})` : '';
    out.push(`${s.kind} ${s.namespace}/${s.name}${where}`);
    if (s.invalid) for (const i of s.invalid) out.push(`  invalid: ${formatIssue(i)}`);
    if (s.parents.length === 0) out.push(s.invalid ? '  not served: no valid version of this route exists' : '  attached to no Service (parentRefs name none)');
    for (const p of s.parents) {
      out.push(`  ${describeParent(p.parentRef)}:`);
      for (const c of p.conditions) out.push(`    ${c.type}=${c.status} ${c.reason}: ${c.message}`);
    }
  }
  return out.join('\n');
}
