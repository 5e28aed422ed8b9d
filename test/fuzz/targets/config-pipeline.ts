// What the control plane does with the objects a source accepted, for the config fuzz targets: store, model,
// route tables, translation to xDS, and the agent's decoding of every resource made. An object validation accepts must
// never make the later stages throw, nor make the control plane send a resource the agent NACKs (one
// NACKed resource holds back every update of its type).

import { meshPods } from '../../../src/controlplane/membership';
import { buildModel } from '../../../src/controlplane/model';
import { policyObjects } from '../../../src/controlplane/policy';
import { buildRouteModel, invalidIssues, storedRoutes } from '../../../src/controlplane/routes/route-tables';
import { ObjectStore, type SourceUpdate } from '../../../src/controlplane/store';
import { translate } from '../../../src/controlplane/translate';
import { VipAllocator } from '../../../src/controlplane/vip-allocator';
import { decodeResource, routeTablesOf } from '../../../src/xds/agent-resources';
import { RDS } from '../../../src/xds/resource-types';
import { check } from '../target';

export function throughPipeline(update: SourceUpdate): void {
  const store = new ObjectStore();
  store.apply(update);
  // As the control plane's rebuild does: services and pods, policies, then the route tables.
  const model = buildModel(store.services(), meshPods(store), new VipAllocator(), undefined, policyObjects(store));
  model.routes = buildRouteModel(model.services, storedRoutes(store), invalidIssues(store.issues()));
  const snapshot = translate(model);
  const resources = [...[...snapshot.shared.values()].flatMap((m) => [...m.values()]), ...snapshot.inbound.values()];
  // What an agent decodes: every Cluster, ClusterLoadAssignment and Listener (wildcard), and the route tables
  // its accepted listeners name (RDS follows them; the proxyless tables are for gRPC clients only).
  const named = new Set<string>();
  const decode = (r: (typeof resources)[number]): void => {
    try {
      const { resource } = decodeResource(r.typeUrl, r.any);
      for (const t of routeTablesOf(resource)) named.add(t);
    } catch (e) {
      check(false, `the agent rejects ${r.typeUrl} ${r.name} made from accepted config: ${(e as Error).message}`);
    }
  };
  for (const r of resources) if (r.typeUrl !== RDS) decode(r);
  for (const r of resources) if (r.typeUrl === RDS && named.has(r.name)) decode(r);
}
