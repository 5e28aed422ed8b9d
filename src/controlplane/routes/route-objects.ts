// Validated Gateway API HTTPRoute and GRPCRoute objects (gateway.networking.k8s.io/v1), as the store holds them.
//
// Matches, header modifiers, rewrites and redirects are already in the agent's own shapes (state/routes.ts), so
// the control plane and the agent speak of one thing: a GRPCRoute's service/method match is its request path.
// What still needs the rest of the config (which Service a parentRef or backendRef names) stays a reference.

import type { HeaderMutation, Redirect, RouteMatch, UrlRewrite } from '../../state/routes';
import type { ObjectMeta } from '../objects';

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';

/** Gateway API's group, the default of parentRefs and of most kinds nodemesh reads. */
export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** A parentRef as written, with Gateway API's defaults applied (group gateway.networking.k8s.io, kind Gateway). */
export interface ParentRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  port?: number;
  sectionName?: string;
}

/** A backendRef as written (defaults: group "", kind Service, the route's namespace, weight 1). */
export interface BackendRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  port?: number;
  weight: number;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
}

/** What decides a match's place in the table (Gateway API precedence), kept beside the match itself. */
export type MatchRank =
  | { kind: 'http'; path: 'Exact' | 'RegularExpression' | 'PathPrefix'; pathLength: number; method: boolean; headers: number; query: number }
  | { kind: 'grpc'; service: number; method: number; headers: number };

export interface RouteRule {
  /** The rule's own name (Gateway API named rules), if it has one. */
  name?: string;
  /** Position in spec.rules, for names and for precedence ties inside one route. */
  index: number;
  /** ORed; never empty (a rule without matches matches every request: PathPrefix "/"). */
  matches: RouteMatch[];
  /** `ranks[i]` ranks `matches[i]`. */
  ranks: MatchRank[];
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  rewrite?: UrlRewrite;
  /** RequestRedirect (HTTPRoute only): the rule answers itself and has no backends. */
  redirect?: Redirect;
  backends: BackendRef[];
  /** HTTPRoute `timeouts` (Gateway API Duration, in ms; 0 disables). */
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  /** HTTPRoute `retry`: retries (Gateway API `attempts`), the statuses retried, the least wait between attempts. */
  retry?: { attempts?: number; codes: number[]; backoffMs?: number };
  /** RequestMirror filters, in order: each mirrors its share of the rule's requests to its backend. */
  mirrors?: MirrorRef[];
  /** An ExtensionRef filter naming a nodemesh.io FaultInjection (in the route's namespace). */
  fault?: { namespace: string; name: string };
}

/** A RequestMirror filter: where copies go, and which share of requests (0-1) is copied. */
export interface MirrorRef {
  backend: BackendRef;
  fraction: number;
}

export interface RouteObject {
  kind: RouteKind;
  meta: ObjectMeta;
  apiVersion: string;
  /** metadata.creationTimestamp in ms since the epoch (API-server objects; files have none). */
  created?: number;
  /** metadata.generation (API-server objects), reported back as observedGeneration. */
  generation?: number;
  parentRefs: ParentRef[];
  /** As written; GAMMA routes do not match on them (GEP-1294: implementations infer nothing from hostnames). */
  hostnames: string[];
  rules: RouteRule[];
}
