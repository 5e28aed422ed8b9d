// `lab up --kubernetes` end to end: a real kube-apiserver 1.20 (the lab's own), real agents with eBPF in lab
// namespaces, pods wired by the reference CNI plugins with nodemesh-cni chained last by each agent. Shown here:
// the lab's nodes and pods are API objects as a kubelet leaves them; the pods were enrolled through CNI (the
// agents' counters say so, not the lab); traffic crosses the mesh; a pod in a namespace outside the mesh is not
// enrolled and mesh pods reach it in plaintext; a Service and an HTTPRoute created through the
// API re-route requests in the lab; the mesh root reaches new namespaces; `check --pre` and `--proxy` pass in the
// lab and name a stopped agent; `lab upgrade-agent` under load drops no request; an agent started after its pods
// enrolls them by reconcile, without CNI; `lab down` leaves nothing behind. (CNI bad input, TokenReview and API
// outages: cni-enrollment and ca-xds.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EnrollClient } from '../../src/enroll/client';
import { addKubePods, killAgent, labDown, labStatus, labUpKubernetes, readState, readStateIfAny, startAgent, upgradeAgent, type LabState } from '../../src/lab';
import { KubeApi } from '../../src/lab/kube/api-client';
import { procAlive } from '../../src/lab/state';
import { nodeCniDirs } from '../../src/lab/kube/kube-state';
import { REFERENCE_PLUGINS } from '../../src/lab/kube/kubelet';
import { DEFAULT_CLI } from '../../src/lab/paths';
import { kubeUnavailable } from '../helpers/kube-apiserver';
import { admin, execInPod, uniqueLabName } from '../helpers/lab';
import { waitFor } from '../helpers/wait';
import { labLeftovers, statePids } from '../fixtures/lab-leftovers';

const VIP = '198.18.128.11';
/** A Service in namespace legacy, which is not labelled nodemesh.io/mesh=enabled: its pod is not in the mesh. */
const LEGACY_VIP = '198.18.128.12';

function skipReason(): string | null {
  return kubeUnavailable() ?? (fs.existsSync(path.join(REFERENCE_PLUGINS, 'bridge')) ? null : 'containernetworking-plugins is not installed: run "bash scripts/kube-apiserver.sh"');
}

/** `nodemesh check ARGS` through the CLI. */
function check(...args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, [DEFAULT_CLI, 'check', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function pod(name: string, node: string, labels: Record<string, string>, command: string[]): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: ${JSON.stringify(labels)} }
spec:
  nodeName: ${node}
  serviceAccountName: ${labels.app}
  containers: [{ name: main, command: ${JSON.stringify(command)} }]
---
`;
}

const MANIFEST =
  pod('client', 'node-a', { app: 'client' }, ['sleep', 'infinity']) +
  pod('http-a', 'node-a', { app: 'http', version: 'v1' }, ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'http', '--version', 'v1']) +
  pod('http-b', 'node-b', { app: 'http', version: 'v2' }, ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'http', '--version', 'v2']) +
  `apiVersion: v1
kind: Service
metadata: { name: http, namespace: default }
spec:
  clusterIP: ${VIP}
  selector: { app: http }
  ports: [{ name: http, port: 8080, targetPort: 8080, appProtocol: http }]
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: legacy, labels: { app: db } }
spec:
  nodeName: node-b
  containers: [{ name: main, command: ["nodemesh", "sample", "http", "--port", "8080", "--name", "db", "--version", "v1"] }]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: legacy }
spec:
  clusterIP: ${LEGACY_VIP}
  selector: { app: db }
  ports: [{ name: http, port: 8080, targetPort: 8080, appProtocol: http }]
`;

interface Answer {
  ok: boolean;
  servedBy?: string;
  error?: string;
}

describe('lab up --kubernetes', { skip: skipReason() ?? false }, () => {
  const lab = uniqueLabName('k8l');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-labk8s-'));
  let state: LabState;
  let api: KubeApi;

  const get = async (count: number, url = `http://${VIP}:8080/`): Promise<Answer[]> => {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, '--count', String(count), '--new-connections', '--timeout', '3000']);
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Answer);
  };
  const dump = async (node: string): Promise<{ pods: { uid: string; name: string }[]; kubernetes: { cniAdds: number; enrolledByReconcile: number } }> => JSON.parse(await admin(lab, node, '/config_dump'));

  before(async () => {
    const file = path.join(dir, 'lab.yaml');
    fs.writeFileSync(file, MANIFEST);
    state = await labUpKubernetes({ file, lab });
    api = await KubeApi.load(state.kubernetes!.adminKubeconfig);
  });

  after(async () => {
    try {
      if (readStateIfAny(lab)) await labDown({ lab });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nodes and pods are API objects as a kubelet leaves them: Nodes Ready, Pods bound with nodeName and their CNI address as podIP', async () => {
    const nodes = await api.must<{ items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] }>('GET', `/api/v1/nodes?labelSelector=nodemesh.io%2Flab%3D${lab}`);
    assert.deepEqual(nodes.items.map((n) => n.metadata.name).sort(), ['node-a', 'node-b']);
    for (const n of nodes.items) assert.ok(n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'), `${n.metadata.name} Ready`);
    for (const p of state.pods) {
      const o = await api.get<{ metadata: { uid: string }; spec: { nodeName: string }; status: { phase: string; podIP: string } }>({ apiVersion: 'v1', kind: 'Pod', namespace: p.namespace, name: p.name });
      assert.ok(o, `Pod ${p.name} in the API`);
      assert.equal(o.spec.nodeName, p.node);
      assert.equal(o.status.phase, 'Running');
      assert.equal(o.status.podIP, p.ip);
      assert.equal(o.metadata.uid, p.uid);
      const node = state.nodes.find((n) => n.name === p.node)!;
      // host-local allocated it from the node's range, and the sandbox remembers the chain's result.
      assert.ok(p.ip.startsWith(node.cidr.split('.').slice(0, 3).join('.')), `${p.ip} in ${node.cidr}`);
      assert.ok(state.kubernetes!.sandboxes[p.key]?.result, `${p.name} has a CNI result`);
    }
  });

  it('every pod was enrolled through CNI by its node\'s agent, with the uid the API gave it', async () => {
    for (const n of state.nodes) {
      const d = await dump(n.name);
      const here = state.pods.filter((p) => p.node === n.name);
      const meshed = here.filter((p) => p.namespace !== 'legacy');
      assert.deepEqual(d.pods.map((p) => p.uid).sort(), meshed.map((p) => p.uid).sort(), `pods of ${n.name}`);
      assert.equal(d.kubernetes.cniAdds, here.length, `CNI ADDs on ${n.name}, the pod outside the mesh's too`);
      assert.equal(d.kubernetes.enrolledByReconcile, 0, `nothing on ${n.name} needed reconcile`);
    }
    const conflist = JSON.parse(fs.readFileSync(state.kubernetes!.sandboxes[state.pods[0]!.key]!.conflist, 'utf8')) as { plugins: { type: string }[] };
    assert.deepEqual(conflist.plugins.map((p) => p.type), ['loopback', 'bridge', 'nodemesh-cni'], 'nodemesh-cni chained last');
  });

  it('a pod in a namespace not in the mesh is not enrolled, and mesh pods reach it in plaintext through its Service', async () => {
    const db = state.pods.find((p) => p.name === 'db')!;
    assert.ok(!(await dump('node-b')).pods.some((p) => p.uid === db.uid), 'node-b did not enroll db');
    const answers = await get(6, `http://${LEGACY_VIP}:8080/`);
    assert.deepEqual(answers.map((a) => (a.ok ? a.servedBy : a.error)), Array(6).fill('db'));
    const cluster = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { services: { clusters: { host: string; endpoints: { pod: string; inMesh: boolean }[] }[] } };
    const endpoints = cluster.services.clusters.find((c) => c.host.startsWith('db.legacy.'))?.endpoints ?? [];
    assert.deepEqual(endpoints.map((e) => [e.pod, e.inMesh]), [['db', false]], 'the calling agent knows db is not in the mesh');
  });

  it('a Service and an HTTPRoute created through the API re-route the lab\'s requests (bounded wait)', async () => {
    const before = await get(6);
    assert.ok(before.every((a) => a.ok), JSON.stringify(before));
    await api.apply(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'http-v2', namespace: 'default' }, spec: { selector: { app: 'http', version: 'v2' }, ports: [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' }] } },
      'nodemesh-test',
    );
    await api.apply(
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'to-v2', namespace: 'default' },
        spec: { parentRefs: [{ group: '', kind: 'Service', name: 'http', port: 8080 }], rules: [{ backendRefs: [{ name: 'http-v2', port: 8080 }] }] },
      },
      'nodemesh-test',
    );
    const t0 = Date.now();
    await waitFor(
      'every request served by http-b (v2)',
      async () => {
        const a = await get(6);
        return a.length === 6 && a.every((x) => x.ok && x.servedBy === 'http-b');
      },
      20_000,
    );
    process.stderr.write(`# the route took effect ${Date.now() - t0} ms after it was created\n`);
    const route = await waitFor('route status written back', async () => {
      const r = await api.get<{ status?: { parents?: { conditions: { type: string; status: string }[] }[] } }>({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'default', name: 'to-v2' });
      return r?.status?.parents?.[0]?.conditions.some((c) => c.type === 'Accepted' && c.status === 'True') ? r : null;
    });
    assert.ok(route.status!.parents![0]!.conditions.some((c) => c.type === 'ResolvedRefs' && c.status === 'True'));
    // lab status shows it as the API has it.
    const shown = (await labStatus(lab)).routes.find((r) => r.name === 'to-v2');
    assert.equal(shown?.parents[0]?.conditions.find((c) => c.type === 'Accepted')?.status, 'True', JSON.stringify(shown));
  });

  it('the mesh root ConfigMap appears in a namespace created through the API', async () => {
    await api.must('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `${lab}-new` } });
    await waitFor('the root in the new namespace', async () => {
      const cm = await api.get<{ data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: `${lab}-new`, name: 'nodemesh-ca-root-cert' });
      return cm?.data?.['root-cert.pem']?.includes('BEGIN CERTIFICATE');
    });
  });

  it('check --pre and --proxy in the lab pass (the node\'s conflist, the API, the DaemonSet, each agent)', () => {
    const conf = nodeCniDirs(lab, 'node-a').confDir;
    const pre = check('--pre', '--kubeconfig', state.kubernetes!.adminKubeconfig, '--cni-conf-dir', conf);
    assert.equal(pre.code, 0, pre.out);
    assert.match(pre.out, new RegExp(`√ cni conflist: ${conf}/`));
    assert.match(pre.out, /√ api: .* answers, Kubernetes v1\.20/);
    const proxy = check('--proxy', '--kubeconfig', state.kubernetes!.adminKubeconfig, ...state.nodes.flatMap((n) => ['--admin-socket', n.adminSocket]));
    assert.equal(proxy.code, 0, proxy.out);
    // The lab keeps the install's DaemonSet and Deployment status as their controllers would.
    assert.match(proxy.out, /√ agents: 2 of 2 agents ready/);
    assert.match(proxy.out, /√ control plane: 1 of 1 replicas ready/);
    assert.match(proxy.out, /√ agent node-a xds: config ACKed, stream up/);
    assert.match(proxy.out, /√ agent node-a pods: 2 enrolled/);
    assert.match(proxy.out, /√ agent node-b pods: 1 enrolled/);
  });

  it('lab upgrade-agent in Kubernetes mode: the new agent takes over under load, no request fails, nodemesh-cni stays chained', async () => {
    const load = execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${VIP}:8080/`, '--duration', '6', '--concurrency', '2', '--summary', '-q'], 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    const old = readState(lab).nodes.find((n) => n.name === 'node-b')!.agent;
    const up = await upgradeAgent(lab, 'node-b');
    assert.ok(up.previous !== null && up.pid !== up.previous);
    const r = await load;
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { summary: { total: number; ok: number; failed: number } };
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(summary.summary.total > 0 && summary.summary.failed === 0, JSON.stringify(summary));
    await waitFor('the old agent gone', async () => !procAlive(old), 30_000);
    const conflist = fs.readFileSync(state.kubernetes!.sandboxes[state.pods.find((p) => p.node === 'node-b')!.key]!.conflist, 'utf8');
    assert.match(conflist, /"nodemesh-cni"/, 'the old agent, stopping for an upgrade, left the plugin chained');
  });

  it('an agent started after its pods enrolls them by reconcile, without CNI', async () => {
    await killAgent(lab, 'node-b');
    const down = check('--proxy', '--kubeconfig', state.kubernetes!.adminKubeconfig, '--admin-socket', state.nodes.find((n) => n.name === 'node-b')!.adminSocket);
    assert.equal(down.code, 1, down.out);
    assert.match(down.out, /× agents: 1 of 2 agents ready/);
    assert.match(down.out, /× agent .*node-b.*: not answering: connect E\w+/);
    assert.match(down.out, /fix: is the agent running on this node\?/);
    // A pod started while its node's agent is away: the chain passes it through unenrolled (fail open).
    const [late] = await addKubePods(lab, pod('late', 'node-b', { app: 'late' }, ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'late', '--version', 'v1']));
    assert.ok(late && late.ip && late.uid);
    assert.equal(late.enrolled, false);
    // An agent that stops for a restart leaves nodemesh-cni chained (its DaemonSet is there): the plugin ran and let
    // the pod start unmeshed.
    assert.ok(late.enrollError, 'why the pod is not enrolled');
    assert.doesNotMatch(late.enrollError, /has no nodemesh-cni entry/);
    const o = await api.get<{ status: { podIP: string } }>({ apiVersion: 'v1', kind: 'Pod', namespace: 'default', name: 'late' });
    assert.equal(o?.status.podIP, late.ip);
    await startAgent(lab, 'node-b');
    const n = readState(lab).nodes.find((x) => x.name === 'node-b')!;
    await waitFor('late enrolled by node-b\'s agent', async () => (await new EnrollClient(n.enrollSocket).list()).some((p) => p.uid === late.uid), 20_000);
    const d = await dump('node-b');
    assert.ok(d.kubernetes.enrolledByReconcile >= 1, JSON.stringify(d.kubernetes));
    assert.equal(d.kubernetes.cniAdds, 0, 'the new agent saw no CNI ADD');
    // And it serves through the mesh: the client on node-a reaches it.
    const a = await waitFor('client reaches late', async () => {
      const r = await get(2, `http://${late.ip}:8080/`);
      return r.length === 2 && r.every((x) => x.ok) ? r : null;
    }, 15_000);
    assert.equal(a[0]!.servedBy, 'late');
  });

  it('lab down stops the API server, the relay and every process, and leaves nothing behind', async () => {
    const last = readState(lab);
    const pids = [last.kubernetes!.own!.apiserver.pid, last.kubernetes!.own!.etcd.pid, last.kubernetes!.proxy!.pid, ...statePids(last)];
    await labDown({ lab });
    assert.deepEqual(labLeftovers(lab, pids), []);
  });
});
