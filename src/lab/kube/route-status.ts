// `lab status` of a Kubernetes-mode lab: the routes' status as the control plane wrote it back to the API server
// (the file mode computes it from the lab's config instead). Only the entries of nodemesh's controller are shown.

import type { RouteKind } from '../../controlplane/routes/route-objects';
import { ROUTE_CONTROLLER, type RouteParentStatus, type RouteStatus } from '../../controlplane/routes/route-status';
import { KubeApi } from './api-client';

interface ApiRoute {
  metadata: { name: string; namespace: string; generation?: number };
  status?: { parents?: RouteParentStatus[] };
}

/** HTTPRoutes and GRPCRoutes of the API server with nodemesh's status; empty when the API cannot be read. */
export async function routeStatusFromApi(adminKubeconfig: string): Promise<RouteStatus[]> {
  const out: RouteStatus[] = [];
  try {
    const api = await KubeApi.load(adminKubeconfig);
    for (const [kind, plural] of [['HTTPRoute', 'httproutes'], ['GRPCRoute', 'grpcroutes']] as [RouteKind, string][]) {
      const r = await api.request<{ items?: ApiRoute[] }>('GET', `/apis/gateway.networking.k8s.io/v1/${plural}`, undefined, { timeoutMs: 3000 });
      if (r.status !== 200) continue;
      for (const o of r.body.items ?? []) {
        const { name, namespace, generation } = o.metadata;
        const parents = (o.status?.parents ?? [])
          .filter((p) => p.controllerName === ROUTE_CONTROLLER)
          .map((p) => ({ ...p, parentRef: { ...p.parentRef, namespace: p.parentRef.namespace ?? namespace } }));
        out.push({ key: `${kind}/${namespace}/${name}`, kind, namespace, name, generation, parents });
      }
    }
  } catch {
    // the API server is away: status says what it can without it
  }
  return out;
}
