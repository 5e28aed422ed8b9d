// The control plane on a real kube-apiserver: CA kept in a Secret and shared by two replicas, the root published in
// every namespace, certificates only for agents whose projected token a real TokenReview accepts (spec.audiences
// sent) and only for identities of pods bound to that agent's node, xDS over TLS for the agent's own node only,
// Services created through the API reaching agents within 2 s, and an API server gone for 30 s.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { after, before, describe, it } from 'node:test';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { CaClient } from '../../src/identity/ca-client';
import { createCsr, generateKeyPair } from '../../src/identity/pki';
import { silentLogger } from '../../src/telemetry/logger';
import { XdsClient } from '../../src/xds/ads-client';
import type { RouteTable } from '../../src/state/routes';
import { CDS, RDS } from '../../src/xds/resource-types';
import { kubeUnavailable, startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver';
import { createNamespace, createPod, createServiceAccount, kubeconfigFor } from '../helpers/kube-objects';
import { waitFor } from '../helpers/wait';

const NS = 'nodemesh-system';

/**
 * Gateway API's HTTPRoute, reduced to what this tier needs: the real CRD is the Gateway API project's to install;
 * here only its group, version and kind matter, so the schema keeps every field.
 */
const HTTPROUTE_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  // *.k8s.io groups must say whether their API was approved; a fixture is not.
  metadata: { name: 'httproutes.gateway.networking.k8s.io', annotations: { 'api-approved.kubernetes.io': 'unapproved, a reduced test fixture' } },
  spec: {
    group: 'gateway.networking.k8s.io',
    names: { kind: 'HTTPRoute', plural: 'httproutes', singular: 'httproute', listKind: 'HTTPRouteList' },
    scope: 'Namespaced',
    versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

/**
 * An HTTPRoute from the API reaches the agent as its Service port's route table, and the control plane writes its
 * status back to the API object: Accepted and ResolvedRefs for the Service parent, under nodemesh's controller.
 */
async function expectRouteAtAgent(k: KubeApiServer, cp: ControlPlaneHandle, agent: { routes: Map<string, RouteTable> }, table: string, namespace: string, name: string): Promise<void> {
  await waitFor(`HTTPRoute ${namespace}/${name} in the control plane`, async () => cp.store.all().has(`HTTPRoute/${namespace}/${name}`), 2000);
  await waitFor(`HTTPRoute ${namespace}/${name} in the agent's table ${table}`, async () => agent.routes.get(table)?.routes.some((r) => r.source.name === name), 2000);
  const status = await waitFor(
    `HTTPRoute ${namespace}/${name} status in the API`,
    async () => {
      const r = await k.request<{ status?: { parents?: { controllerName: string; conditions: { type: string; status: string }[] }[] } }>('GET', `/apis/gateway.networking.k8s.io/v1/namespaces/${namespace}/httproutes/${name}`);
      return r.body.status?.parents?.find((p) => p.controllerName === 'nodemesh.io/mesh-controller');
    },
    5000,
  );
  assert.deepEqual(
    status.conditions.map((c) => [c.type, c.status]),
    [
      ['Accepted', 'True'],
      ['ResolvedRefs', 'True'],
    ],
  );
}
const ROOT_CM = 'nodemesh-ca-root-cert';

describe('control plane and CA on a real kube-apiserver', { skip: kubeUnavailable() ?? false }, () => {
  let k: KubeApiServer | undefined;
  const cps: ControlPlaneHandle[] = [];
  const xds: XdsClient[] = [];
  const cas: CaClient[] = [];
  let dir = '';
  let agentToken = '';
  let rootFile = '';

  const controlPlane = async (reviewerKubeconfig?: string): Promise<ControlPlaneHandle> => {
    const cp = await startControlPlane({
      kubernetes: { kubeconfig: k!.kubeconfig },
      xdsAddress: '127.0.0.1:0',
      secureAddress: '127.0.0.1:0',
      metricsPort: false,
      rootConfigMap: ROOT_CM,
      logger: silentLogger(),
      ca: {
        secret: { namespace: NS, name: 'cacerts', kubeconfig: k!.kubeconfig },
        kubernetes: { kubeconfig: reviewerKubeconfig ?? k!.kubeconfig, agentNamespace: NS },
      },
    });
    cps.push(cp);
    return cp;
  };
  const caClient = (cp: ControlPlaneHandle, tokenFile: string): CaClient => {
    const c = new CaClient({ address: cp.secureAddress!, tokenFile, tlsRootFile: rootFile });
    cas.push(c);
    return c;
  };
  const csrFor = async (ns: string, sa: string): Promise<string> => createCsr(await generateKeyPair(), `spiffe://cluster.local/ns/${ns}/sa/${sa}`);
  const tokenFile = (name: string, token: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, token);
    return f;
  };
  /** An agent-side xDS client; `clusters` holds the cluster names it has accepted, `routes` its route tables. */
  const agentXds = (cp: ControlPlaneHandle, node: string, token: string): XdsClient & { clusters: Set<string>; routes: Map<string, RouteTable> } => {
    const clusters = new Set<string>();
    const routes = new Map<string, RouteTable>();
    const c = new XdsClient(
      { address: cp.secureAddress!, node, mode: 'delta', log: silentLogger(), registry: new Registry(), tls: { rootFile, tokenFile: tokenFile(`${node}-${xds.length}.token`, token) } },
      {
        apply: (type, resources) => {
          if (type === RDS) {
            routes.clear();
            for (const r of resources.values()) if (r.kind === 'routes') routes.set(r.table.name, r.table);
          }
          if (type !== CDS) return;
          clusters.clear();
          for (const n of resources.keys()) clusters.add(n);
        },
      },
    );
    xds.push(c);
    c.start();
    return Object.assign(c, { clusters, routes });
  };

  before(async () => {
    k = await startKubeApiServer();
    dir = fs.mkdtempSync(path.join(k.dir, 't-'));
    await k.must('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', HTTPROUTE_CRD);
    await waitFor('HTTPRoute served', async () => (await k!.request('GET', '/apis/gateway.networking.k8s.io/v1/httproutes')).status === 200, 30_000);
    await createNamespace(k, NS);
    await createServiceAccount(k, NS, 'nodemesh-agent');
    await createNamespace(k, 'shop', { 'nodemesh.io/mesh': 'enabled' });
    for (const sa of ['web', 'db']) await createServiceAccount(k, 'shop', sa);
    const agentUid = await createPod(k, { namespace: NS, name: 'nodemesh-agent-a', node: 'node-a', serviceAccount: 'nodemesh-agent', ip: '198.18.0.1' });
    await createPod(k, { namespace: 'shop', name: 'web', node: 'node-a', serviceAccount: 'web', ip: '198.19.1.10', labels: { app: 'web' } });
    await createPod(k, { namespace: 'shop', name: 'db', node: 'node-b', serviceAccount: 'db', ip: '198.19.2.10', labels: { app: 'db' } });
    agentToken = await k.mintToken(NS, 'nodemesh-agent', 'nodemesh-ca', { name: 'nodemesh-agent-a', uid: agentUid });
    const cp = await controlPlane();
    rootFile = path.join(dir, 'root.pem');
    fs.writeFileSync(rootFile, cp.ca!.rootPem);
  });
  after(async () => {
    for (const c of xds) c.close();
    for (const c of cas) c.close();
    for (const cp of cps) await cp.close().catch(() => undefined);
    await k?.stop();
  });

  it('the CA lives in a Secret: a second replica signs with the same root, and both serve xDS and the CA', async () => {
    const secret = await k!.must<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/secrets/cacerts`);
    assert.deepEqual(Object.keys(secret.data).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    const second = await controlPlane();
    assert.equal(second.ca!.rootPem, cps[0]!.ca!.rootPem);
    for (const cp of cps) {
      const chain = await caClient(cp, tokenFile('agent.token', agentToken)).createCertificate(await csrFor('shop', 'web'), 3600);
      assert.equal(chain[chain.length - 1]!.trim(), cps[0]!.ca!.rootPem.trim());
      const c = agentXds(cp, 'node-a', agentToken);
      await waitFor(`node-a synced from replica ${cps.indexOf(cp)}`, async () => c.synced());
    }
  });

  it('the root is published in every namespace, new ones included', async () => {
    const read = async (ns: string): Promise<string | undefined> => {
      const r = await k!.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/configmaps/${ROOT_CM}`);
      return r.status === 200 ? r.body.data?.['root-cert.pem'] : undefined;
    };
    await waitFor('root in shop', async () => (await read('shop')) === cps[0]!.ca!.rootPem);
    await createNamespace(k!, 'fresh');
    await waitFor('root in a namespace created after start', async () => (await read('fresh')) === cps[0]!.ca!.rootPem);
  });

  it('the CA signs only identities of pods on the agent\'s own node', async () => {
    const ca = caClient(cps[0]!, tokenFile('agent2.token', agentToken));
    await assert.rejects(ca.createCertificate(await csrFor('shop', 'db'), 3600), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'NM_ID_CA_DENIED');
      assert.match(e.message, /node-a/);
      return true;
    });
  });

  it('tokens a real TokenReview does not accept are refused with the reason', async () => {
    // Minted for the API server's audience, not nodemesh-ca: TokenReview with spec.audiences [nodemesh-ca] fails.
    const agentPod = await k!.must<{ metadata: { uid: string } }>('GET', `/api/v1/namespaces/${NS}/pods/nodemesh-agent-a`);
    const wrongAudience = await k!.mintToken(NS, 'nodemesh-agent', 'https://kubernetes.default.svc.cluster.local', { name: 'nodemesh-agent-a', uid: agentPod.metadata.uid });
    await assert.rejects(caClient(cps[0]!, tokenFile('aud.token', wrongAudience)).createCertificate(await csrFor('shop', 'web'), 3600), /did not authenticate the token/);
    // A valid token of another ServiceAccount.
    const webPod = await k!.must<{ metadata: { uid: string } }>('GET', '/api/v1/namespaces/shop/pods/web');
    const workload = await k!.mintToken('shop', 'web', 'nodemesh-ca', { name: 'web', uid: webPod.metadata.uid });
    await assert.rejects(caClient(cps[0]!, tokenFile('web.token', workload)).createCertificate(await csrFor('shop', 'web'), 3600), /belongs to system:serviceaccount:shop:web, not to the agent's ServiceAccount/);
    // xDS over TLS: another node's config is refused even with a valid token.
    const other = agentXds(cps[0]!, 'node-b', agentToken);
    await waitFor('node-b refused', async () => /belongs to node node-a, but the request is for node node-b/.test(String(other.status().lastError ?? '')));
  });

  it('a TokenReview the API server refuses (no RBAC for it) is an error naming the API, not a pass', async () => {
    await createServiceAccount(k!, NS, 'no-review');
    const kc = kubeconfigFor(k!, await k!.mintToken(NS, 'no-review', 'https://kubernetes.default.svc.cluster.local'), path.join(dir, 'no-review.kubeconfig'));
    const cp = await controlPlane(kc);
    await assert.rejects(caClient(cp, tokenFile('agent3.token', agentToken)).createCertificate(await csrFor('shop', 'web'), 3600), /cannot review the token with the Kubernetes API/);
  });

  it('a Service and an HTTPRoute created through the API reach the agent / the control plane within 2 s', async () => {
    const agent = agentXds(cps[0]!, 'node-a', agentToken);
    await waitFor('synced', async () => agent.synced());
    const started = Date.now();
    await k!.must('POST', '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'shop' },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    });
    // The bound for config propagation; measured on this machine it is far below.
    await waitFor('the Service cluster at the agent', async () => agent.clusters.has('outbound|80||web.shop.svc.cluster.local'), 2000);
    process.stdout.write(`# Service -> agent: ${Date.now() - started} ms\n`);
    await k!.must('POST', '/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes', {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web-canary', namespace: 'shop' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
    });
    await expectRouteAtAgent(k!, cps[0]!, agent, 'routes|web.shop.svc.cluster.local:80', 'shop', 'web-canary');
    process.stdout.write(`# HTTPRoute -> agent's table and API status: ${Date.now() - started} ms since the Service\n`);
  });

  it('the API server gone for 30 s: agents keep their config, the control plane keeps serving, both resync on return', async () => {
    const agent = agentXds(cps[0]!, 'node-a', agentToken);
    await waitFor('synced', async () => agent.synced() && agent.clusters.has('outbound|80||web.shop.svc.cluster.local'));
    await k!.pause();
    await new Promise((r) => setTimeout(r, 30_000));
    assert.ok(agent.synced(), 'the agent still holds its config');
    assert.ok(agent.clusters.has('outbound|80||web.shop.svc.cluster.local'));
    // A certificate for a node already reviewed comes from the cache only within its lifetime; a new request
    // during the outage is refused as unavailable, not granted.
    await k!.resume();
    await k!.must('POST', '/api/v1/namespaces/shop/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'shop' },
      spec: { selector: { app: 'db' }, ports: [{ name: 'tcp', port: 5432, protocol: 'TCP' }] },
    });
    await waitFor('resync after the outage', async () => agent.clusters.has('outbound|5432||db.shop.svc.cluster.local'), 30_000);
  });
});
