// `lab down` of a Kubernetes-mode lab, the part before the common teardown (agents, processes, pins, netns,
// cgroups, the lab dir): each pod's sandbox gets its CNI DEL as a runtime would give it (nodemesh-cni unenrolls the
// pod while the agents still run, bridge removes the veth, host-local frees the address), and an API server that
// outlives the lab loses every object the lab created and the labels it added. The lab's own API server needs no
// cleanup of objects: it stops with the lab's cgroup and its data goes with the lab dir.

import fs from 'node:fs';
import type { LabLogger } from '../log';
import type { LabState } from '../state';
import { describeRef, KubeApi } from './api-client';
import { deleteSandbox } from './kubelet';
import { MESH_LABEL } from '../../enroll/membership';

/** Returns what could not be removed (the caller reports it and keeps the lab dir for another try). */
export async function kubeTeardown(state: LabState, log: LabLogger): Promise<string[]> {
  const k = state.kubernetes;
  if (!k) return [];
  const problems: string[] = [];
  for (const pod of state.pods) {
    if (!k.sandboxes[pod.key] || !fs.existsSync(pod.netnsPath)) continue;
    try {
      const failed = await deleteSandbox(state, pod);
      // The namespaces are deleted next, and with them whatever a failed DEL left in them.
      if (failed) log.warn(failed);
    } catch (err) {
      log.warn(`CNI DEL of pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`);
    }
  }
  if (k.own || !k.adminKubeconfig) return problems;
  let api: KubeApi;
  try {
    api = await KubeApi.load(k.adminKubeconfig);
  } catch (err) {
    return [`cannot reach the API server to delete what the lab created there: ${(err as Error).message}`];
  }
  for (const ref of [...k.created].reverse()) {
    try {
      await api.remove(ref);
    } catch (err) {
      problems.push(`${describeRef(ref)} in ${k.server}: ${(err as Error).message}`);
    }
  }
  for (const ns of k.labelled) {
    try {
      await api.must('PATCH', `/api/v1/namespaces/${ns}`, { metadata: { labels: { [MESH_LABEL]: null } } }, { contentType: 'application/merge-patch+json', what: `removing the label ${MESH_LABEL} from namespace ${ns}` });
    } catch (err) {
      if (!/answered 404/.test((err as Error).message)) problems.push((err as Error).message);
    }
  }
  if (problems.length === 0) log.info(`removed ${k.created.length} object(s) the lab created in ${k.server}`);
  return problems;
}
