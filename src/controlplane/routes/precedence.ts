// Gateway API match precedence: the order in which one Service port's route table lists its matches.

import type { MatchRank, RouteObject } from './route-objects';

/** One match of one rule of one route: what the table lists (one Envoy route each). */
export interface RankedMatch {
  route: RouteObject;
  /** Position in route.rules. */
  rule: number;
  /** Position in the rule's matches. */
  match: number;
  rank: MatchRank;
}

/** Exact before RegularExpression before PathPrefix (the place of regular expressions is ours to choose). */
const PATH_ORDER = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

function byRank(a: MatchRank, b: MatchRank): number {
  if (a.kind === 'http' && b.kind === 'http') {
    return (
      PATH_ORDER[a.path] - PATH_ORDER[b.path] ||
      b.pathLength - a.pathLength ||
      Number(b.method) - Number(a.method) ||
      b.headers - a.headers ||
      b.query - a.query
    );
  }
  if (a.kind === 'grpc' && b.kind === 'grpc') return b.service - a.service || b.method - a.method || b.headers - a.headers;
  // A table never mixes the two kinds (GEP-1294); keep GRPCRoute first should one ever reach here.
  return a.kind === 'grpc' ? -1 : 1;
}

/**
 * HTTPRoute (Gateway API HTTPRouteRule.matches): an Exact path, then the longest PathPrefix, then a method
 * match, then the most header matches, then the most query matches. RegularExpression paths (whose place the
 * spec leaves to implementations) come after Exact and before PathPrefix, longest pattern first, as Envoy
 * Gateway orders them: after PathPrefix, a `PathPrefix: /` rule would hide every regular expression.
 * GRPCRoute: the longest service, then the longest method, then the most header matches.
 * Ties: the oldest route (creation timestamp; routes from files have none and count as newest), then
 * "{namespace}/{name}" alphabetically, then rule order, then match order within the rule.
 */
export function comparePrecedence(a: RankedMatch, b: RankedMatch): number {
  const ca = a.route.created ?? Number.POSITIVE_INFINITY;
  const cb = b.route.created ?? Number.POSITIVE_INFINITY;
  const na = `${a.route.meta.namespace}/${a.route.meta.name}`;
  const nb = `${b.route.meta.namespace}/${b.route.meta.name}`;
  return (
    byRank(a.rank, b.rank) ||
    (ca === cb ? 0 : ca < cb ? -1 : 1) ||
    (na === nb ? 0 : na < nb ? -1 : 1) ||
    // One route object per namespace/name and kind; HTTPRoute and GRPCRoute never share a table.
    a.rule - b.rule ||
    a.match - b.match
  );
}

/** Every match of `routes` in table order. */
export function orderMatches(routes: RouteObject[]): RankedMatch[] {
  const all: RankedMatch[] = [];
  for (const route of routes) {
    route.rules.forEach((r, rule) => r.ranks.forEach((rank, match) => all.push({ route, rule, match, rank })));
  }
  return all.sort(comparePrecedence);
}
