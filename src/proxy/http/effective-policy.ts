// What /config_dump shows of each route beside the policy it was sent: the policy the layers apply, with
// every default filled in (a route that sets no retry still retries as Istio does; a timeout of 0 is none).

import type { Route, RouteTable } from '../../state/routes';
import { retryPolicyFor } from './layers/retry';

export interface EffectivePolicy {
  /** The whole exchange (retries included), ms; null: no limit. */
  timeoutMs: number | null;
  retry: { retries: number; on: string[]; codes: number[]; backoffBaseMs: number; backoffMaxMs: number; perTryTimeoutMs: number | null };
  mirrors: { cluster: string; fraction: number }[];
  fault: NonNullable<Route['policy']>['fault'] | null;
  hash: NonNullable<Route['policy']>['hash'] | null;
}

export function effectivePolicy(route: Route): EffectivePolicy | null {
  if (route.action.kind !== 'forward') return null;
  const p = route.policy;
  const r = retryPolicyFor(p);
  return {
    timeoutMs: p?.timeoutMs !== undefined && p.timeoutMs > 0 ? p.timeoutMs : null,
    retry: { retries: r.retries, on: [...r.on], codes: [...r.codes], backoffBaseMs: r.baseMs, backoffMaxMs: r.maxMs, perTryTimeoutMs: r.perTryMs },
    mirrors: p?.mirrors ?? [],
    fault: p?.fault ?? null,
    hash: p?.hash ?? null,
  };
}

/** Route tables as the agent holds them, each forwarding route with its `effective` policy. */
export function withEffectivePolicies(tables: RouteTable[]): (Omit<RouteTable, 'routes'> & { routes: (Route & { effective: EffectivePolicy | null })[] })[] {
  return tables.map((t) => ({ ...t, routes: t.routes.map((r) => ({ ...r, effective: effectivePolicy(r) })) }));
}
