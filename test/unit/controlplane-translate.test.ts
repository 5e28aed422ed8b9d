// Model and translation: targetPort by name, VIP allocation, resource names and shapes, per-node views.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel, ModelCache } from '../../src/controlplane/model';
import { buildRouteModel, DefaultTableCache } from '../../src/controlplane/routes/route-tables';
import type { PodObject, ServiceObject } from '../../src/controlplane/objects';
import { buildWorkloadsAssignment, makeResource, resourcesFor, translate } from '../../src/controlplane/translate';
import { TranslationMemo } from '../../src/controlplane/translate-memo';
import { inVipRange, VipAllocator } from '../../src/controlplane/vip-allocator';
import { decodeAny, decodeMessage, fromStruct } from '../../src/xds/protos';
import { CDS, EDS, HCM_TYPE, LDS, RDS } from '../../src/xds/resource-types';

function svc(name: string, extra: Partial<ServiceObject> = {}): ServiceObject {
  return {
    kind: 'Service',
    meta: { name, namespace: 'default', uid: name, labels: {}, annotations: {} },
    selector: { app: name },
    ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http', appProtocol: 'http' }],
    ...extra,
  };
}

function pod(name: string, app: string, ip: string, port: number, extra: Partial<PodObject> = {}): PodObject {
  return {
    kind: 'Pod',
    meta: { name, namespace: 'default', uid: `uid-${name}`, labels: { app }, annotations: {} },
    nodeName: 'n1',
    serviceAccount: 'sa',
    containers: [{ name: 'c', ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }] }],
    podIP: ip,
    ready: true,
    inMesh: true,
    ...extra,
  };
}

test('targetPort by name resolves per pod; pods without the named port, unready or unselected are skipped', () => {
  const m = buildModel(
    [svc('echo')],
    [
      pod('a', 'echo', '10.0.0.1', 8080),
      pod('b', 'echo', '10.0.0.2', 9090),
      pod('c', 'echo', '10.0.0.3', 1, { containers: [{ name: 'c', ports: [{ name: 'other', containerPort: 1, protocol: 'TCP' }] }] }),
      pod('d', 'echo', '10.0.0.4', 8080, { ready: false }),
      pod('e', 'other', '10.0.0.5', 8080),
      pod('f', 'echo', '10.0.0.6', 8080, { podIP: undefined }),
    ],
    new VipAllocator(),
  );
  assert.deepEqual(
    m.services[0].ports[0].endpoints.map((e) => `${e.pod}=${e.address}:${e.port}`),
    ['a=10.0.0.1:8080', 'b=10.0.0.2:9090'],
  );
  const numeric = buildModel([svc('echo', { ports: [{ port: 80, protocol: 'TCP', targetPort: 7000 }] })], [pod('a', 'echo', '10.0.0.1', 8080)], new VipAllocator());
  assert.equal(numeric.services[0].ports[0].endpoints[0].port, 7000);
});

test('VIPs: spec.clusterIP honoured, others stable from 198.18.128.0/17, distinct, sticky, none for headless', () => {
  const alloc = new VipAllocator();
  const services = [svc('a'), svc('b', { clusterIP: '10.96.0.10' }), svc('c'), svc('h', { clusterIP: 'None' })];
  const first = buildModel(services, [], alloc).services.map((s) => s.vip);
  assert.equal(first[1], '10.96.0.10');
  assert.equal(first[3], undefined);
  assert.ok(inVipRange(first[0]!) && inVipRange(first[2]!));
  assert.notEqual(first[0], first[2]);
  // A fresh allocator (a restart) computes the same VIPs; adding a service moves none.
  const again = buildModel(services, [], new VipAllocator()).services.map((s) => s.vip);
  assert.deepEqual(again, first);
  const more = new Map(buildModel([...services, svc('d')], [], alloc).services.map((s) => [s.name, s.vip]));
  assert.deepEqual(['a', 'b', 'c', 'h'].map((n) => more.get(n)), first);
  assert.ok(inVipRange(more.get('d')!) && !first.includes(more.get('d')));
  assert.equal(inVipRange('198.18.127.255'), false);
  assert.equal(inVipRange('198.18.255.254'), true);
});

test('translation: names, shapes and metadata of the four resource types', () => {
  const model = buildModel([svc('echo', { clusterIP: '198.18.200.1' })], [pod('a', 'echo', '10.0.0.1', 8080), pod('b', 'echo', '10.0.0.2', 8080, { nodeName: 'n2', inMesh: false })], new VipAllocator());
  const snap = translate(model);
  const host = 'echo.default.svc.cluster.local';
  const cname = `outbound|80||${host}`;
  // The workload directory has one part per node with in-mesh pods (b is not in the mesh).
  assert.deepEqual([...snap.shared.get(CDS)!.keys()], ['InboundPassthroughCluster', 'nodemesh-workloads|n1', cname]);
  assert.deepEqual([...snap.shared.get(EDS)!.keys()], ['nodemesh-workloads|n1', cname]);
  assert.deepEqual([...snap.shared.get(LDS)!.keys()], [`${host}:80`, 'vip|198.18.200.1:80']);
  assert.deepEqual([...snap.shared.get(RDS)!.keys()], [`${host}:80`, `routes|${host}:80`]);
  assert.deepEqual([...snap.inbound.keys()], ['n1']); // b is not in the mesh: no inbound config on n2

  const cluster = decodeAny<Record<string, unknown>>(snap.shared.get(CDS)!.get(cname)!.any);
  assert.equal(cluster.type, 'EDS');
  assert.equal(cluster.lb_policy, 'ROUND_ROBIN');
  assert.deepEqual((cluster.connect_timeout as { seconds: string }).seconds, '5');
  assert.equal(((cluster.eds_cluster_config as { eds_config: { config_source_specifier: string } }).eds_config).config_source_specifier, 'ads');

  const cla = decodeAny<{ endpoints: { locality: { zone: string }; load_balancing_weight: { value: number }; lb_endpoints: { metadata: { filter_metadata: Record<string, unknown> } }[] }[] }>(
    snap.shared.get(EDS)!.get(cname)!.any,
  );
  assert.deepEqual(cla.endpoints.map((l) => [l.locality.zone, l.load_balancing_weight.value]), [['n1', 1], ['n2', 1]]);
  assert.deepEqual(fromStruct(cla.endpoints[1].lb_endpoints[0].metadata.filter_metadata.nodemesh), {
    pod: 'b',
    namespace: 'default',
    serviceAccount: 'sa',
    node: 'n2',
    inMesh: false,
    app: 'echo',
  });

  const api = decodeAny<{ api_listener: { api_listener: { type_url: string; value: Buffer } } }>(snap.shared.get(LDS)!.get(`${host}:80`)!.any);
  assert.equal(api.api_listener.api_listener.type_url, `type.googleapis.com/${HCM_TYPE}`);
  const hcm = decodeMessage<{ rds: { route_config_name: string }; http_filters: { name: string }[] }>(HCM_TYPE, api.api_listener.api_listener.value);
  assert.equal(hcm.rds.route_config_name, `${host}:80`);
  assert.deepEqual(hcm.http_filters.map((f) => f.name), ['envoy.filters.http.router']);

  // appProtocol http: the VIP listener parses HTTP and reads its routes over RDS (the default table here).
  const vip = decodeAny<{ address: { socket_address: { address: string; port_value: number } }; filter_chains: { filters: { typed_config: { type_url: string } }[] }[] }>(
    snap.shared.get(LDS)!.get('vip|198.18.200.1:80')!.any,
  );
  assert.deepEqual([vip.address.socket_address.address, vip.address.socket_address.port_value], ['198.18.200.1', 80]);
  const vipHcm = decodeAny<{ codec_type: string; rds: { route_config_name: string } }>(vip.filter_chains[0].filters[0].typed_config as unknown as { type_url: string; value: Buffer });
  assert.deepEqual([vipHcm.codec_type, vipHcm.rds.route_config_name], ['HTTP1', `routes|${host}:80`]);
  const table = decodeAny<{ virtual_hosts: { domains: string[]; routes: { route: { cluster: string } }[] }[] }>(snap.shared.get(RDS)!.get(`routes|${host}:80`)!.any);
  assert.deepEqual(table.virtual_hosts[0].domains, ['*']);
  assert.equal(table.virtual_hosts[0].routes[0].route.cluster, cname);
  // A tcp port keeps the L4 listener: a tcp_proxy to the cluster, and no route table.
  const l4 = translate(buildModel([svc('db', { clusterIP: '198.18.200.2', ports: [{ name: 'tcp-db', port: 5432, protocol: 'TCP', targetPort: 5432 }] })], [], new VipAllocator()));
  const l4Listener = decodeAny<{ filter_chains: { filters: { typed_config: { type_url: string; value: Buffer } }[] }[] }>(l4.shared.get(LDS)!.get('vip|198.18.200.2:5432')!.any);
  assert.equal(decodeAny<{ cluster: string }>(l4Listener.filter_chains[0].filters[0].typed_config).cluster, 'outbound|5432||db.default.svc.cluster.local');
  assert.deepEqual([...l4.shared.get(RDS)!.keys()], ['db.default.svc.cluster.local:5432']);

  const rc = decodeAny<{ virtual_hosts: { domains: string[]; routes: { match: { prefix: string }; route: { cluster: string } }[] }[] }>(snap.shared.get(RDS)!.get(`${host}:80`)!.any);
  assert.ok(rc.virtual_hosts[0].domains.includes(host) && rc.virtual_hosts[0].domains.includes(`${host}:80`) && rc.virtual_hosts[0].domains.includes('echo'));
  assert.deepEqual([rc.virtual_hosts[0].routes[0].match.prefix, rc.virtual_hosts[0].routes[0].route.cluster], ['/', cname]);

  // Each node sees all services plus only its own inbound listener.
  assert.ok(resourcesFor(snap, LDS, 'n1').has('inbound|n1'));
  assert.equal(resourcesFor(snap, LDS, 'n2').has('inbound|n1'), false);
  // Agents are not sent the API listeners only proxyless gRPC clients use.
  assert.deepEqual([...resourcesFor(snap, LDS, { node: 'n1', agent: true }).keys()], ['vip|198.18.200.1:80', 'inbound|n1']);
});

test('versions are content hashes: same config, same versions; one endpoint change moves only EDS', () => {
  const pods = [pod('a', 'echo', '10.0.0.1', 8080)];
  const a = translate(buildModel([svc('echo', { clusterIP: '198.18.200.1' })], pods, new VipAllocator()));
  const b = translate(buildModel([svc('echo', { clusterIP: '198.18.200.1' })], pods, new VipAllocator()));
  const c = translate(buildModel([svc('echo', { clusterIP: '198.18.200.1' })], [pod('a', 'echo', '10.0.0.9', 8080)], new VipAllocator()));
  const v = (s: typeof a, t: typeof CDS, n: string) => s.shared.get(t)!.get(n)!.version;
  const cname = 'outbound|80||echo.default.svc.cluster.local';
  assert.equal(v(a, EDS, cname), v(b, EDS, cname));
  assert.notEqual(v(a, EDS, cname), v(c, EDS, cname));
  assert.equal(v(a, CDS, cname), v(c, CDS, cname));
});

test('rebuilds reuse what did not change: one Service changed re-encodes that Service only, and the changes name only its resources', () => {
  const memo = new TranslationMemo();
  const alloc = new VipAllocator();
  const services = ['a', 'b', 'c'].map((n, i) => svc(n, { clusterIP: `198.18.200.${i + 1}` }));
  const pods = [pod('a1', 'a', '10.0.0.1', 8080), pod('b1', 'b', '10.0.0.2', 8080, { nodeName: 'n2' }), pod('c1', 'c', '10.0.0.3', 8080)];
  const first = translate(buildModel(services, pods, alloc), {}, memo);
  const built = memo.built;
  assert.ok(built > 0 && first.changes === undefined);

  // Same objects again: nothing is encoded, nothing changed.
  const same = translate(buildModel(services, pods, alloc), {}, memo, first);
  assert.equal(memo.built, 0);
  assert.equal(memo.reused, built);
  for (const c of same.changes!.shared.values()) assert.deepEqual([c.changed.size, c.removed.size], [0, 0]);

  // b's pod serves on another port: b's Service is rebuilt (its endpoints) and b1's inbound chains (whose
  // inputs are the whole pod) are encoded again, to the same bytes; b1's directory entry is fingerprinted and
  // reused. Only b's endpoints change.
  const moved = pods.map((p) => (p.meta.name === 'b1' ? pod('b1', 'b', '10.0.0.2', 9090, { nodeName: 'n2' }) : p));
  const next = translate(buildModel(services, moved, alloc), {}, memo, same);
  assert.equal(memo.built, 2);
  assert.deepEqual([...next.changes!.shared.get(EDS)!.changed], ['outbound|80||b.default.svc.cluster.local']);
  for (const t of [CDS, LDS, RDS]) assert.equal(next.changes!.shared.get(t)!.changed.size, 0);
  assert.deepEqual([...next.changes!.inbound.changed], []);
  // Identical bytes to a build without the memo.
  const fresh = translate(buildModel(services, moved, new VipAllocator()));
  for (const t of [CDS, EDS, LDS, RDS]) {
    assert.deepEqual(
      [...next.shared.get(t)!].map(([n, r]) => [n, r.version]),
      [...fresh.shared.get(t)!].map(([n, r]) => [n, r.version]),
    );
  }
  assert.deepEqual([...next.inbound].map(([n, r]) => [n, r.version]), [...fresh.inbound].map(([n, r]) => [n, r.version]));
});

test('the caches kept between rebuilds hand out the same objects only for the same inputs, and change no byte', () => {
  const memo = new TranslationMemo();
  const cache = new ModelCache();
  const tables = new DefaultTableCache();
  const alloc = new VipAllocator();
  let hashed: string | undefined = undefined;
  const build = (services: ServiceObject[], pods: PodObject[], prev?: ReturnType<typeof translate>) => {
    const model = buildModel(services, pods, alloc, undefined, [], cache);
    model.routes = buildRouteModel(model.services, [], new Map(), { hashOf: (c) => (c === hashed ? [{ kind: 'header' as const, name: 'x-user' }] : undefined) }, tables);
    return { model, snap: translate(model, {}, memo, prev) };
  };
  const fresh = (services: ServiceObject[], pods: PodObject[]) => {
    const model = buildModel(services, pods, new VipAllocator());
    model.routes = buildRouteModel(model.services, [], new Map(), { hashOf: (c) => (c === hashed ? [{ kind: 'header' as const, name: 'x-user' }] : undefined) });
    return translate(model);
  };
  const versions = (s: ReturnType<typeof translate>) => [...[CDS, EDS, LDS, RDS].map((t) => [...s.shared.get(t)!].map(([n, r]) => [n, r.version])), [...s.inbound].map(([n, r]) => [n, r.version])];
  let services = ['a', 'b', 'c'].map((n, i) => svc(n, { clusterIP: `198.18.200.${i + 1}` }));
  let pods = [pod('a1', 'a', '10.0.0.1', 8080), pod('b1', 'b', '10.0.0.2', 8080, { nodeName: 'n2' }), pod('c1', 'c', '10.0.0.3', 8080)];
  const one = build(services, pods);
  // Same objects: every Service model, the route tables and the workloads are the same objects.
  const two = build(services, pods, one.snap);
  assert.equal(cache.reused, 3);
  assert.ok(two.model.services.every((m, i) => m === one.model.services[i]));
  assert.equal(two.model.workloadsByNode, one.model.workloadsByNode);
  assert.ok([...two.model.routes!.ports].every(([c, r]) => one.model.routes!.ports.get(c) === r));
  assert.equal(memo.built, 0);
  // One Service edited (a new object): its model only is built again.
  services = services.map((s) => (s.meta.name === 'b' ? svc('b', { clusterIP: '198.18.200.2', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9090, appProtocol: 'http' }] }) : s));
  const three = build(services, pods, two.snap);
  assert.equal(cache.reused, 2);
  assert.deepEqual([...three.snap.changes!.shared.get(EDS)!.changed], ['outbound|80||b.default.svc.cluster.local']);
  assert.deepEqual(versions(three.snap), versions(fresh(services, pods)));
  // A pod replaced: the workloads are built again; a cluster's hash key set: its tables are built again.
  pods = pods.map((p) => (p.meta.name === 'c1' ? pod('c1', 'c', '10.0.0.9', 8080) : p));
  hashed = 'outbound|80||a.default.svc.cluster.local';
  const four = build(services, pods, three.snap);
  assert.notEqual(four.model.workloadsByNode, three.model.workloadsByNode);
  assert.notEqual(four.model.routes!.ports.get(hashed), three.model.routes!.ports.get(hashed));
  assert.ok(four.snap.changes!.shared.get(RDS)!.changed.has('routes|a.default.svc.cluster.local:80'));
  assert.deepEqual(versions(four.snap), versions(fresh(services, pods)));
  // Back to the same objects: the section of workloads is reused and sweeping kept its pieces.
  build(services, pods, four.snap);
  const five = build(services, pods, four.snap);
  assert.equal(memo.built, 0);
  assert.deepEqual(versions(five.snap), versions(fresh(services, pods)));
});

test('the spliced workload directory part is the message its builder describes', () => {
  const pods = [pod('a1', 'a', '10.0.0.1', 8080), pod('a2', 'a', '10.0.0.2', 8080)];
  const snap = translate(buildModel([], pods, new VipAllocator()));
  const part = snap.shared.get(EDS)!.get('nodemesh-workloads|n1')!;
  assert.deepEqual(part.any.value, makeResource(EDS, 'nodemesh-workloads|n1', buildWorkloadsAssignment('n1', pods)).any.value);
});
