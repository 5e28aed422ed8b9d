// `check --pre` against the cluster (API reachable, version limits, RBAC to install) and `check --proxy`'s API
// part (agents scheduled and ready, control plane ready, the mesh root published).

import { AGENT_NAME, ROOT_CONFIGMAP } from '../install/agent-manifests';
import { CONTROLPLANE_NAME } from '../install/controlplane-manifests';
import { fail, ok, warn, type CheckResult } from './report';

type KubeModule = typeof import('@kubernetes/client-node');

async function kube(kubeconfig?: string): Promise<{ k8s: KubeModule; kc: import('@kubernetes/client-node').KubeConfig }> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  return { k8s, kc };
}

/** What `nodemesh install | kubectl apply` creates: [group, resource, namespaced]. */
const INSTALL_ACCESS: [string, string, boolean][] = [
  ['', 'namespaces', false],
  ['apiextensions.k8s.io', 'customresourcedefinitions', false],
  ['scheduling.k8s.io', 'priorityclasses', false],
  ['rbac.authorization.k8s.io', 'clusterroles', false],
  ['rbac.authorization.k8s.io', 'clusterrolebindings', false],
  ['rbac.authorization.k8s.io', 'roles', true],
  ['rbac.authorization.k8s.io', 'rolebindings', true],
  ['', 'serviceaccounts', true],
  ['', 'configmaps', true],
  ['', 'services', true],
  ['apps', 'deployments', true],
  ['apps', 'daemonsets', true],
  ['policy', 'poddisruptionbudgets', true],
];

const errText = (err: unknown): string => {
  const e = err as { code?: number; body?: unknown; message?: string };
  return e.code ? `HTTP ${e.code}` : (e.message ?? String(err));
};

export async function clusterPreChecks(opts: { kubeconfig?: string; namespace: string }): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  let k: Awaited<ReturnType<typeof kube>>;
  try {
    k = await kube(opts.kubeconfig);
  } catch (err) {
    return [fail('api', `cannot load Kubernetes credentials: ${(err as Error).message}`, 'set KUBECONFIG or --kubeconfig')];
  }
  let minor = 0;
  try {
    const v = await k.kc.makeApiClient(k.k8s.VersionApi).getCode();
    minor = Number.parseInt(v.minor, 10);
    out.push(ok('api', `${k.kc.getCurrentCluster()?.server ?? '?'} answers, Kubernetes ${v.gitVersion}`));
  } catch (err) {
    return [fail('api', `the API server ${k.kc.getCurrentCluster()?.server ?? '?'} does not answer: ${errText(err)}`, 'check the kubeconfig\'s server address and that the API server runs')];
  }
  if (minor < 21) {
    out.push(
      warn(
        'kubernetes version',
        `1.${minor} lacks DaemonSet maxSurge and PodDisruptionBudget policy/v1`,
        'upgrade to 1.21 or later; on older clusters set the agent update to maxUnavailable 1 and apply the PDB as policy/v1beta1',
      ),
    );
  }
  const authz = k.kc.makeApiClient(k.k8s.AuthorizationV1Api);
  for (const [group, resource, namespaced] of INSTALL_ACCESS) {
    const name = `rbac: create ${group ? `${resource}.${group}` : resource}`;
    try {
      const r = await authz.createSelfSubjectAccessReview({
        body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { group, resource, verb: 'create', namespace: namespaced ? opts.namespace : undefined } } },
      });
      out.push(
        r.status?.allowed
          ? ok(name, namespaced ? `allowed in ${opts.namespace}` : 'allowed')
          : fail(name, `denied${r.status?.reason ? `: ${r.status.reason}` : ''}`, `install as a user who may create ${resource}${namespaced ? ` in ${opts.namespace}` : ''} (cluster-admin does)`),
      );
    } catch (err) {
      out.push(fail(name, `cannot ask the API: ${errText(err)}`, 'the API server must serve authorization.k8s.io/v1'));
    }
  }
  return out;
}

export async function clusterProxyChecks(opts: { kubeconfig?: string; namespace: string }): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const k = await kube(opts.kubeconfig);
  const apps = k.kc.makeApiClient(k.k8s.AppsV1Api);
  const core = k.kc.makeApiClient(k.k8s.CoreV1Api);
  const installHint = 'run "nodemesh install | kubectl apply --server-side -f -"';
  try {
    const ds = await apps.readNamespacedDaemonSet({ namespace: opts.namespace, name: AGENT_NAME });
    const want = ds.status?.desiredNumberScheduled ?? 0;
    const ready = ds.status?.numberReady ?? 0;
    if (want === 0) out.push(fail('agents', `DaemonSet ${opts.namespace}/${AGENT_NAME} has no agent scheduled`, 'check node taints and the DaemonSet\'s events (kubectl -n nodemesh-system describe ds nodemesh-agent)'));
    else if (ready < want) out.push(fail('agents', `${ready} of ${want} agents ready`, `see the unready agents' /healthz/ready reason: kubectl -n ${opts.namespace} logs -l app.kubernetes.io/name=${AGENT_NAME}`));
    else out.push(ok('agents', `${ready} of ${want} agents ready`));
  } catch (err) {
    out.push(fail('agents', `no DaemonSet ${opts.namespace}/${AGENT_NAME} (${errText(err)})`, installHint));
  }
  try {
    const d = await apps.readNamespacedDeployment({ namespace: opts.namespace, name: CONTROLPLANE_NAME });
    const want = d.spec?.replicas ?? 1;
    const ready = d.status?.readyReplicas ?? 0;
    out.push(ready >= want ? ok('control plane', `${ready} of ${want} replicas ready`) : fail('control plane', `${ready} of ${want} replicas ready`, `kubectl -n ${opts.namespace} logs deploy/${CONTROLPLANE_NAME}`));
  } catch (err) {
    out.push(fail('control plane', `no Deployment ${opts.namespace}/${CONTROLPLANE_NAME} (${errText(err)})`, installHint));
  }
  try {
    const cm = await core.readNamespacedConfigMap({ namespace: opts.namespace, name: ROOT_CONFIGMAP });
    out.push(cm.data?.['root-cert.pem'] ? ok('mesh root', `ConfigMap ${ROOT_CONFIGMAP} published`) : fail('mesh root', `ConfigMap ${ROOT_CONFIGMAP} has no root-cert.pem`, 'the control plane republishes it within a minute; check its logs'));
  } catch (err) {
    out.push(fail('mesh root', `ConfigMap ${opts.namespace}/${ROOT_CONFIGMAP} is missing (${errText(err)})`, 'the control plane publishes it once its CA is up: check the control plane\'s logs'));
  }
  return out;
}
