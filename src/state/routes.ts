// L7 routes as the proxy sees them: per Service port, an ordered route table (Gateway API HTTPRoute /
// GRPCRoute semantics, delivered as Envoy RDS) and what each route does with a request.
//
// This is the contract between the xDS decoding (`xds/agent-resources.ts`, the only writer) and the
// per-request layers in `proxy/http/` (the readers). Plain data only: it crosses to worker threads by
// structured clone, and readers compile what they need (regular expressions) once per table. Readers never
// write into a table: decoded tables are frozen and share the parts many tables repeat (xds/canon.ts).

import { deepFreeze } from '../util/deep-freeze';

/** How the agent treats a Service port (Istio's names; decided by appProtocol, then port name, then detection). */
export type PortProtocol = 'tcp' | 'http' | 'http2' | 'grpc' | 'detect';

/** The HTTP versions a connection can carry; 'http2' is cleartext prior-knowledge h2c (gRPC uses it). */
export type HttpVersion = 'http1' | 'http2';

/** How one request attribute compares. `regex` is RE2 syntax as Gateway API and Envoy use it (JS-compatible subset). */
export interface StringMatcher {
  kind: 'exact' | 'prefix' | 'regex';
  value: string;
}

export interface PathMatch {
  /** `prefix` is Gateway API's PathPrefix: segment-wise (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`). */
  kind: 'exact' | 'prefix' | 'regex';
  value: string;
}

export interface HeaderMatch {
  /** Lower case. */
  name: string;
  kind: 'exact' | 'regex' | 'present';
  value: string;
  invert?: boolean;
}

export interface QueryMatch {
  name: string;
  kind: 'exact' | 'regex' | 'present';
  value: string;
}

/** One Gateway API match: every present condition must hold (AND). A route's matches are ORed. */
export interface RouteMatch {
  path?: PathMatch;
  method?: string;
  headers: HeaderMatch[];
  query: QueryMatch[];
}

/** Gateway API HTTPHeaderFilter: set replaces, add appends, remove deletes (names lower case). */
export interface HeaderMutation {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

export interface UrlRewrite {
  hostname?: string;
  /** ReplaceFullPath or ReplacePrefixMatch (the prefix replaced is the route's own PathPrefix match). */
  path?: { kind: 'full'; value: string } | { kind: 'prefix'; match: string; value: string };
}

export interface Redirect {
  scheme?: 'http' | 'https';
  hostname?: string;
  port?: number;
  path?: { kind: 'full'; value: string } | { kind: 'prefix'; match: string; value: string };
  status: 301 | 302 | 303 | 307 | 308;
}

/** A backendRef with its weight. `cluster` names a ClusterInfo in ServiceStore. */
export interface WeightedBackend {
  cluster: string;
  weight: number;
  /** Backend-level filters (Gateway API allows header modifiers per backendRef). */
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  /**
   * The backendRef names nothing that exists (a missing Service, a bad kind): its share of requests is
   * answered 500, as Gateway API requires, instead of being spread over the other backends.
   */
  invalid?: string;
}

export type RouteAction =
  | { kind: 'forward'; backends: WeightedBackend[]; rewrite?: UrlRewrite }
  | { kind: 'redirect'; redirect: Redirect }
  | { kind: 'respond'; status: number; body?: string };

/**
 * Per-route resilience, filled in by the resilience layers' config (timeouts, retries, mirrors, faults,
 * hashing). Absent fields mean the defaults those layers document.
 */
export interface RoutePolicy {
  /** Whole exchange, retries included (Gateway API timeouts.request); 0 disables. */
  timeoutMs?: number;
  /** One attempt (timeouts.backendRequest); 0 disables. */
  perTryTimeoutMs?: number;
  /**
   * `attempts` is the number of retries (Gateway API's and Envoy's num_retries); `on` Envoy's retry_on
   * conditions; `codes` its retriable_status_codes. Absent: DEFAULT_ROUTE_RETRY.
   */
  retry?: { attempts: number; on: string[]; codes: number[]; backoffBaseMs?: number; backoffMaxMs?: number };
  /** Each mirror gets a copy of its share (0-1) of the requests. */
  mirrors?: { cluster: string; fraction: number }[];
  fault?: {
    delay?: { ms: number; fraction: number };
    abort?: { httpStatus?: number; grpcStatus?: number; fraction: number };
  };
  hash?: ({ kind: 'header'; name: string } | { kind: 'cookie'; name: string; ttlMs?: number; path?: string } | { kind: 'sourceIp' } | { kind: 'query'; name: string })[];
}

/** Istio's default, for a route that sets no retry policy: 2 retries on connect failure, refused stream, gRPC UNAVAILABLE/CANCELLED and 503. */
export const DEFAULT_ROUTE_RETRY: Readonly<NonNullable<RoutePolicy['retry']>> = {
  attempts: 2,
  on: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
  codes: [503],
};

/** Envoy retry_on conditions the agent honours (see proxy/http/layers/retry.ts `retriable`). */
export const RETRY_ON = ['connect-failure', 'refused-stream', 'reset', '5xx', 'gateway-error', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'resource-exhausted', 'internal', 'unavailable'] as const;

export interface Route {
  /** Stable and readable: `ns/route-name/rule-N` or the rule's own name (Gateway API named rules). */
  name: string;
  /** The HTTPRoute/GRPCRoute this came from, for telemetry and status. */
  source: { kind: 'HTTPRoute' | 'GRPCRoute' | 'default'; namespace: string; name: string; rule?: string };
  /** ORed; an empty list matches every request. */
  matches: RouteMatch[];
  action: RouteAction;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  policy?: RoutePolicy;
}

/**
 * The routes of one Service port as the client sees them, in precedence order already (Gateway API's
 * rules, applied by the control plane): the first route with a matching match wins. A request that
 * matches none gets 404.
 */
export interface RouteTable {
  /** The RouteConfiguration's name. */
  name: string;
  routes: Route[];
}

/** How the agent serves one Service VIP:port. */
export interface ServicePort {
  vip: string;
  port: number;
  /** The Service's own cluster (what a connection with no L7 goes to). */
  cluster: string;
  protocol: PortProtocol;
  /** For 'detect': how long to wait for the client's first bytes before treating the connection as TCP. */
  detectTimeoutMs?: number;
  /** RouteConfiguration for clients in any namespace without consumer routes (producer routes, or the default). */
  routeTable?: string;
  /** GAMMA consumer routes: clients in these namespaces use their namespace's table instead. */
  consumerRouteTables?: Record<string, string>;
}

/**
 * Route tables by name; replaced as a whole on each accepted RDS set, or by what changed in it. What it holds
 * is frozen: tables share parts (decoded ones on the main thread; structured clone keeps that sharing within
 * one message to a worker), so a write by one reader would change every table holding the part.
 */
export class RouteStore {
  private tables = new Map<string, RouteTable>();
  private version = 0;

  replace(tables: RouteTable[]): void {
    this.tables = new Map(tables.map((t) => [t.name, deepFreeze(t)]));
    this.version++;
  }

  /** Some tables changed: `removed` (names) go, `upserted` are set. */
  update(removed: string[], upserted: RouteTable[]): void {
    for (const n of removed) this.tables.delete(n);
    for (const t of upserted) this.tables.set(t.name, deepFreeze(t));
    this.version++;
  }

  get(name: string): RouteTable | undefined {
    return this.tables.get(name);
  }

  /** Bumped on every replace or update: readers that compile tables key their caches on it. */
  generation(): number {
    return this.version;
  }

  all(): RouteTable[] {
    return [...this.tables.values()];
  }
}
