// Route status computed from YAML files without running a control plane: `nodemesh controlplane status --config`.

import fs from 'node:fs';
import path from 'node:path';
import { ControlPlaneError, CP_ERR } from '../errors';
import { meshPods } from '../membership';
import { buildModel } from '../model';
import { ObjectStore } from '../store';
import { VipAllocator } from '../vip-allocator';
import { parseYamlSource } from '../yaml-parse';
import { buildTrafficModel, routeExtras, storedDestinationRules } from '../traffic/traffic-model';
import { buildRouteModel, invalidIssues, storedRoutes } from './route-tables';
import type { RouteStatus } from './route-status';

/** The YAML files a --config path names: the file itself, or a directory's *.yaml / *.yml (not hidden), sorted. */
function yamlFiles(p: string): string[] {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (err) {
    throw new ControlPlaneError(CP_ERR.CONFIG_PATH, `config path ${abs} does not exist`, { hint: 'pass --config with an existing YAML file or directory', cause: err });
  }
  if (!st.isDirectory()) return [abs];
  return fs
    .readdirSync(abs)
    .filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => path.join(abs, n));
}

/** What a control plane started on `paths` would report (no last good versions: it has seen each file once). */
export function routeStatusOfFiles(paths: string[], domain?: string): RouteStatus[] {
  const store = new ObjectStore();
  for (const file of paths.flatMap(yamlFiles)) store.apply(parseYamlSource(`file:${file}`, file, fs.readFileSync(file, 'utf8')));
  const model = buildModel(store.services(), meshPods(store), new VipAllocator(), domain);
  const traffic = buildTrafficModel(model.services, storedDestinationRules(store), domain);
  return buildRouteModel(model.services, storedRoutes(store), invalidIssues(store.issues()), routeExtras(store, traffic)).status;
}
