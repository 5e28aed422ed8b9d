// The xDS shape of inbound policy (RBAC filters, chain metadata, versions) and what the agent refuses to honour.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../../src/controlplane/model';
import type { AuthorizationPolicyObject, PodObject } from '../../src/controlplane/objects';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { AuthzStore, authorize, DEFAULT_INBOUND_POLICY, type InboundPolicy } from '../../src/state/authz';
import { decodeResource, XdsResourceError } from '../../src/xds/agent-resources';
import { anyOf, decodeAny, fromStruct, toAny } from '../../src/xds/protos';
import { LDS, LISTENER_TYPE, RBAC_TYPE, TCP_PROXY_TYPE, TYPE_URL_PREFIX } from '../../src/xds/resource-types';

const POD: PodObject = {
  kind: 'Pod',
  meta: { name: 'web', namespace: 'app', uid: 'u1', labels: { app: 'web' }, annotations: {} },
  nodeName: 'n1',
  serviceAccount: 'web',
  containers: [{ name: 'c', ports: [] }],
  podIP: '10.0.0.1',
  ready: true,
  inMesh: true,
};

function authz(name: string, action: 'ALLOW' | 'DENY', rules: AuthorizationPolicyObject['rules']): AuthorizationPolicyObject {
  return { kind: 'AuthorizationPolicy', meta: { name, namespace: 'app', uid: name, labels: {}, annotations: {} }, action, rules };
}

type Msg = Record<string, unknown>;
type AnyBytes = { type_url: string; value: Buffer };

test('inbound chains: the TCP chain (DENY RBAC, ALLOW RBAC, tcp_proxy) and, first, the HTTP chain with HTTP RBAC; mtlsMode and policy names in metadata', () => {
  const policies = [
    authz('deny-ns', 'DENY', [{ from: [{ notNamespaces: ['app'], ipBlocks: ['10.9.0.0/16'] }], to: [{ ports: [22, 23] }] }]),
    authz('allow-a', 'ALLOW', [{ from: [{ principals: ['cluster.local/ns/a/sa/b'] }], to: [] }]),
    authz('allow-none', 'ALLOW', []),
  ];
  const snap = translate(buildModel([], [POD], new VipAllocator(), undefined, policies));
  const l = decodeAny<Msg>(snap.inbound.get('n1')!.any);
  // A pod with policies: its HTTP chain (requests) comes first, matched by what http_inspector finds (bounded).
  assert.deepEqual((l.filter_chains as Msg[]).map((c) => c.name), ['app/web|http', 'app/web']);
  assert.deepEqual((l.listener_filters as Msg[]).map((f) => f.name), ['envoy.filters.listener.http_inspector']);
  assert.deepEqual([l.listener_filters_timeout, l.continue_on_listener_filters_timeout], [{ seconds: '0', nanos: 100_000_000 }, true]);
  const httpChain = (l.filter_chains as Msg[])[0];
  assert.deepEqual((httpChain.filter_chain_match as Msg).application_protocols, ['http/1.0', 'http/1.1', 'h2c']);
  const hcm = decodeAny<Msg>(((httpChain.filters as Msg[])[0].typed_config) as AnyBytes);
  assert.deepEqual((hcm.http_filters as Msg[]).map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.router']);
  assert.equal(fromStruct(((httpChain.metadata as Msg).filter_metadata as Msg).nodemesh).view, 'http');
  const chain = (l.filter_chains as Msg[])[1];
  const filters = chain.filters as { name: string; typed_config: AnyBytes }[];
  assert.deepEqual(
    filters.map((f) => [f.name, f.typed_config.type_url.slice(TYPE_URL_PREFIX.length)]),
    [
      ['envoy.filters.network.rbac', RBAC_TYPE],
      ['envoy.filters.network.rbac', RBAC_TYPE],
      ['envoy.filters.network.tcp_proxy', TCP_PROXY_TYPE],
    ],
  );
  const deny = decodeAny<Msg>(filters[0].typed_config);
  assert.equal(deny.stat_prefix, 'inbound|app/web.deny.');
  assert.equal((deny.rules as Msg).action, 'DENY');
  const denyPolicy = ((deny.rules as Msg).policies as Record<string, Msg>)['app.deny-ns[0]'];
  assert.deepEqual(JSON.parse(JSON.stringify(denyPolicy.permissions, (k, v) => (k === 'rule' ? undefined : v))), [
    { or_rules: { rules: [{ destination_port: 22 }, { destination_port: 23 }] } },
  ]);
  const principal = (denyPolicy.principals as Msg[])[0].and_ids as { ids: Msg[] };
  assert.deepEqual(
    principal.ids.map((i) => i.identifier),
    ['not_id', 'direct_remote_ip'],
  );
  const nsMatcher = (((principal.ids[0].not_id as Msg).authenticated as Msg).principal_name as Msg).safe_regex as Msg;
  assert.equal(nsMatcher.regex, 'spiffe://[^/]+/ns/app/sa/[^/]+');
  const allow = decodeAny<Msg>(filters[1].typed_config);
  assert.deepEqual(Object.keys((allow.rules as Msg).policies as Msg), ['app.allow-a[0]']);
  const allowPrincipal = (((allow.rules as Msg).policies as Record<string, Msg>)['app.allow-a[0]'].principals as Msg[])[0];
  assert.deepEqual(((allowPrincipal.authenticated as Msg).principal_name as Msg).exact, 'spiffe://cluster.local/ns/a/sa/b');
  const meta = fromStruct(((chain.metadata as Msg).filter_metadata as Msg).nodemesh);
  assert.equal(meta.mtlsMode, 'PERMISSIVE');
  assert.deepEqual(meta.policies, ['app.deny-ns', 'app.allow-a', 'app.allow-none']);
  assert.equal(meta.ip, '10.0.0.1');
});

test('no policy: no RBAC filter; a policy change changes the inbound listener version', () => {
  const v = (p: AuthorizationPolicyObject[]): string => translate(buildModel([], [POD], new VipAllocator(), undefined, p)).inbound.get('n1')!.version;
  const plain = translate(buildModel([], [POD], new VipAllocator())).inbound.get('n1')!;
  const filters = (decodeAny<Msg>(plain.any).filter_chains as Msg[])[0].filters as Msg[];
  assert.deepEqual(
    filters.map((f) => f.name),
    ['envoy.filters.network.tcp_proxy'],
  );
  assert.equal(v([]), plain.version);
  const a = v([authz('x', 'DENY', [{ from: [], to: [{ ports: [1] }] }])]);
  assert.notEqual(a, plain.version);
  assert.notEqual(v([authz('x', 'DENY', [{ from: [], to: [{ ports: [2] }] }])]), a);
  assert.equal(v([authz('x', 'DENY', [{ from: [], to: [{ ports: [1] }] }])]), a);
});

/** An inbound listener whose one chain carries `rbac` filters (plain RBAC messages). */
function listenerWith(rbac: Msg[], meta: Record<string, string> = {}): AnyBytes {
  const fields: Msg = { pod: { stringValue: 'web' }, namespace: { stringValue: 'app' }, ip: { stringValue: '10.0.0.1' } };
  for (const [k, v] of Object.entries(meta)) fields[k] = { stringValue: v };
  return toAny(LISTENER_TYPE, {
    name: 'inbound|n1',
    traffic_direction: 'INBOUND',
    filter_chains: [
      {
        name: 'app/web',
        filters: [
          ...rbac.map((r) => ({ name: 'envoy.filters.network.rbac', typed_config: anyOf(RBAC_TYPE, { stat_prefix: 'x', ...r }) })),
          { name: 'envoy.filters.network.tcp_proxy', typed_config: anyOf(TCP_PROXY_TYPE, { stat_prefix: 'x', cluster: 'InboundPassthroughCluster' }) },
        ],
        metadata: { filter_metadata: { nodemesh: { fields } } },
      },
    ],
  });
}

function decodePolicy(rbac: Msg[], meta?: Record<string, string>): InboundPolicy {
  const d = decodeResource(LDS, listenerWith(rbac, meta)).resource;
  if (d.kind !== 'inbound') throw new Error(`not inbound: ${d.kind}`);
  return d.policies.get('10.0.0.1')!;
}

const ANY_PRINCIPAL = [{ any: true }];

test('the agent NACKs RBAC it cannot honour, naming what', () => {
  const nack = (rbac: Msg[], re: RegExp, meta?: Record<string, string>): void =>
    assert.throws(() => decodePolicy(rbac, meta), (e: unknown) => e instanceof XdsResourceError && re.test(e.message));
  const rule = (permissions: Msg[], principals: Msg[] = ANY_PRINCIPAL): Msg => ({ rules: { action: 'DENY', policies: { 'p[0]': { permissions, principals } } } });
  nack([rule([{ metadata: { filter: 'x' } }])], /RBAC policy p\[0\]: permission metadata is not supported/);
  nack([rule([{ requested_server_name: { exact: 'x' } }])], /permission requested_server_name is not supported/);
  nack([rule([{ url_path: { path: { safe_regex: { regex: '(a' } } } }])], /RBAC policy p: .*"\(a": not a valid regular expression/);
  nack([rule([{ any: true }], [{ header: { name: 'x' } }])], /header x: match \(none\) is not supported/);
  nack([rule([{ any: true }], [{ authenticated: { principal_name: { contains: 'x' } } }])], /principal_name matcher contains is not supported/);
  nack([rule([{ any: true }], [{ authenticated: { principal_name: { safe_regex: { regex: '.*' } } } }])], /safe_regex "\.\*" is not supported/);
  nack([{ rules: { action: 'LOG', policies: {} } }], /RBAC action LOG is not supported/);
  nack([{ rules: { action: 'ALLOW' } }, { rules: { action: 'ALLOW' } }], /more than one RBAC filter with action ALLOW/);
  nack([{ rules: { action: 'DENY', policies: { p: { permissions: [{ any: true }], principals: ANY_PRINCIPAL, condition: { const_expr: { bool_value: true } } } } } }], /CEL conditions/);
  nack([], /mtlsMode DISABLE is not supported/, { mtlsMode: 'DISABLE' });
  nack([rule([{ any: true }], [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 40 } } }])], /prefix length must be 0-32/);
});

test('decoded generic RBAC: port ranges, remote_ip, authenticated without a name; empty ALLOW filter denies all', () => {
  const p = decodePolicy(
    [
      {
        rules: {
          action: 'ALLOW',
          policies: {
            range: { permissions: [{ destination_port_range: { start: 8000, end: 8100 } }], principals: [{ remote_ip: { address_prefix: '10.1.0.0', prefix_len: { value: 16 } } }] },
            mtls: { permissions: [{ destination_port: 443 }], principals: [{ authenticated: {} }] },
          },
        },
      },
    ],
    { mtlsMode: 'STRICT' },
  );
  assert.equal(p.mtlsMode, 'STRICT');
  const ok = (principal: string | null, port: number, ip = '10.1.2.3'): boolean => authorize(p, { principal, sourceIp: ip, destinationPort: port }).allowed;
  const peer = 'spiffe://cluster.local/ns/a/sa/b';
  assert.equal(ok(peer, 8050), true);
  assert.equal(ok(peer, 8100), false);
  assert.equal(ok(peer, 8050, '10.2.0.1'), false);
  assert.equal(ok(peer, 443, '10.2.0.1'), true);
  assert.match(authorize(p, { principal: null, sourceIp: '10.1.2.3', destinationPort: 8050 }).reason, /STRICT/);
  const nothing = decodePolicy([{ rules: { action: 'ALLOW' } }]);
  assert.deepEqual(nothing.allow, []);
  assert.equal(authorize(nothing, { principal: peer, sourceIp: '10.1.2.3', destinationPort: 1 }).allowed, false);
});

test('AuthzStore: default for unknown pods, replace as a whole, IPv4-mapped keys, change callback', () => {
  const s = new AuthzStore();
  assert.equal(s.forPodIp('10.0.0.1'), DEFAULT_INBOUND_POLICY);
  assert.equal(authorize(s.forPodIp('10.0.0.1'), { principal: null, sourceIp: '1.2.3.4', destinationPort: 1 }).allowed, true);
  let changes = 0;
  s.onChange(() => changes++);
  const strict: InboundPolicy = { mtlsMode: 'STRICT', deny: [], allow: null };
  s.replace(new Map([['::ffff:10.0.0.1', strict]]));
  assert.equal(s.forPodIp('10.0.0.1'), strict);
  assert.equal(s.forPodIp('::ffff:10.0.0.1'), strict);
  s.replace(new Map());
  assert.equal(s.forPodIp('10.0.0.1'), DEFAULT_INBOUND_POLICY);
  assert.equal(changes, 2);
});
