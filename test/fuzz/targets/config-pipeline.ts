// What the control plane does with the objects a source accepted, for the config fuzz targets: store, model,
// translation to xDS, and the agent's decoding of every resource made. An object validation accepts must
// never make the later stages throw, nor make the control plane send a resource the agent NACKs (one
// NACKed resource holds back every update of its type).

import { buildModel } from '../../../src/controlplane/model';
import { policyObjects } from '../../../src/controlplane/policy';
import { ObjectStore, type SourceUpdate } from '../../../src/controlplane/store';
import { translate } from '../../../src/controlplane/translate';
import { VipAllocator } from '../../../src/controlplane/vip-allocator';
import { decodeResource } from '../../../src/xds/agent-resources';
import { check } from '../target';

export function throughPipeline(update: SourceUpdate): void {
  const store = new ObjectStore();
  store.apply(update);
  const model = buildModel(store.services(), store.pods(), new VipAllocator(), undefined, policyObjects(store));
  const snapshot = translate(model);
  const resources = [...[...snapshot.shared.values()].flatMap((m) => [...m.values()]), ...snapshot.inbound.values()];
  for (const r of resources) {
    try {
      decodeResource(r.typeUrl, r.any);
    } catch (e) {
      check(false, `the agent rejects ${r.typeUrl} ${r.name} made from accepted config: ${(e as Error).message}`);
    }
  }
}
