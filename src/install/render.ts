// `nodemesh install` / `uninstall`: every object for a cluster, in apply order, as one YAML stream.

import { Document, isSeq, type Scalar } from 'yaml';
import { AGENT_CAPABILITIES, agentObjects, PRIORITY_CLASS } from './agent-manifests';
import { controlPlaneObjects } from './controlplane-manifests';
import { crdObjects } from './crds';
import { labels, type Manifest } from './manifest';
import type { InstallValues } from './values';

/** Namespace, cluster-scoped objects and CRDs first, so every later object's dependencies exist when applied. */
export function installObjects(v: InstallValues): Manifest[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: v.namespace, labels: labels('namespace') } },
    {
      apiVersion: 'scheduling.k8s.io/v1',
      kind: 'PriorityClass',
      metadata: { name: PRIORITY_CLASS, labels: labels('priority') },
      // The highest value a user-defined class may have: the mesh's agents are evicted after everything else
      // but the system's own classes.
      value: 1000000000,
      globalDefault: false,
      description: 'nodemesh agents and control plane: pods depend on them for their traffic',
    },
    ...crdObjects(),
    ...controlPlaneObjects(v),
    ...agentObjects(v),
  ];
}

function toYaml(o: Manifest): string {
  const doc = new Document(o);
  if (o.kind === 'DaemonSet') {
    // The reason for each capability, next to it.
    const seq = doc.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities', 'add'], true);
    if (isSeq(seq)) {
      seq.items.forEach((item, i) => {
        (item as Scalar).comment = ` ${AGENT_CAPABILITIES[i]!.why}`;
      });
    }
  }
  return doc.toString({ lineWidth: 0 });
}

const HEADER = (v: InstallValues): string =>
  `# nodemesh ${'install'} output: namespace ${v.namespace}, image ${v.image}, trust domain ${v.trustDomain}.\n` +
  '# Apply with: nodemesh install | kubectl apply --server-side -f -\n';

export function renderInstall(v: InstallValues): string {
  return HEADER(v) + installObjects(v).map((o) => `---\n${toYaml(o)}`).join('');
}

/**
 * What to delete, dependants first: the CRDs (and with them every FaultInjection), the workloads, then the
 * namespace. The ConfigMaps the control plane published in other namespaces carry the managed-by label
 * nodemesh-controlplane and are listed by `kubectl delete configmap -A -l app.kubernetes.io/managed-by=nodemesh-controlplane`.
 * The agents remove their CNI entry from each node's conflist when their DaemonSet is deleted.
 */
export function renderUninstall(v: InstallValues): string {
  const objs = installObjects(v).reverse();
  return (
    `# nodemesh uninstall: delete with: nodemesh uninstall | kubectl delete --ignore-not-found -f -\n` +
    objs.map((o) => `---\n${new Document({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) } }).toString()}`).join('')
  );
}
