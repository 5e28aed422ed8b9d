// protos/envoy-types.json: current with the Envoy protos, and decoding exactly as the parsed .proto files do.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { buildModel } from '../../src/controlplane/model';
import type { AuthorizationPolicyObject, PodObject, ServiceObject } from '../../src/controlplane/objects';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { ENVOY_ROOT_TYPES, envoyDescriptorPath, generateEnvoyDescriptor, loadEnvoyDescriptor, parseEnvoyProtos } from '../../src/xds/envoy-descriptor';
import { DECODE_OPTIONS } from '../../src/xds/protos';
import { TYPE_URL_PREFIX } from '../../src/xds/resource-types';

const parsed = parseEnvoyProtos();
const stored = loadEnvoyDescriptor();

test('the stored descriptor is what the Envoy protos in node_modules give (else: npm run gen:envoy-types)', () => {
  assert.ok(fs.readFileSync(envoyDescriptorPath(), 'utf8') === generateEnvoyDescriptor(), 'protos/envoy-types.json is stale: run "npm run gen:envoy-types" and commit it');
});

/** What decoding depends on, for one type: field names, numbers, types, labels, map keys, packing, oneofs. */
function shape(t: protobuf.Type | protobuf.Enum): unknown {
  if (t instanceof protobuf.Enum) return { values: { ...t.values } };
  return {
    fields: t.fieldsArray.map((f) => [f.name, f.id, f.resolvedType?.fullName ?? f.type, f.repeated, f.map ? (f as unknown as protobuf.MapField).keyType : null, f.packed]),
    oneofs: t.oneofsArray.map((o) => [o.name, o.oneof]),
  };
}

test('every type reachable from the root messages is in the descriptor with the same shape as in the protos', () => {
  const seen = new Set<string>();
  const visit = (t: protobuf.Type | protobuf.Enum): void => {
    if (seen.has(t.fullName)) return;
    seen.add(t.fullName);
    assert.deepEqual(shape(stored.lookup(t.fullName) as protobuf.Type | protobuf.Enum), shape(t), t.fullName);
    if (t instanceof protobuf.Type) for (const f of t.fieldsArray) if (f.resolvedType) visit(f.resolvedType);
  };
  for (const name of ENVOY_ROOT_TYPES) visit(parsed.lookupType(name));
  assert.ok(seen.size > 300, `only ${seen.size} types reachable`);
  // Pruned: the validation annotations and unused types are not carried.
  assert.equal(stored.lookup('validate.FieldRules'), null);
});

/** Decodes with `root`, then every nested Any whose type it knows, so whole trees can be compared. */
function decodeDeep(root: protobuf.Root, typeName: string, bytes: Uint8Array): unknown {
  const t = root.lookupType(typeName);
  const expand = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(expand);
    if (v === null || typeof v !== 'object' || Buffer.isBuffer(v) || v instanceof Uint8Array) return v;
    const o = v as Record<string, unknown>;
    if (typeof o.type_url === 'string' && o.value instanceof Uint8Array && o.type_url.startsWith(TYPE_URL_PREFIX)) {
      return { type_url: o.type_url, decoded: decodeDeep(root, o.type_url.slice(TYPE_URL_PREFIX.length), o.value) };
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, expand(x)]));
  };
  return expand(t.toObject(t.decode(bytes), DECODE_OPTIONS));
}

test('the control plane resources (services, endpoints, routes, RBAC) decode the same with both', () => {
  const meta = (name: string, namespace = 'default') => ({ name, namespace, uid: name, labels: { app: name }, annotations: {} });
  const svc: ServiceObject = { kind: 'Service', meta: meta('echo'), selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, appProtocol: 'http' }] };
  const pod: PodObject = { kind: 'Pod', meta: meta('echo'), nodeName: 'n1', serviceAccount: 'sa', containers: [], podIP: '10.0.0.1', ready: true, inMesh: true };
  const policy = (name: string, action: 'ALLOW' | 'DENY', rules: AuthorizationPolicyObject['rules']): AuthorizationPolicyObject => ({ kind: 'AuthorizationPolicy', meta: meta(name), action, rules });
  const policies = [
    policy('deny', 'DENY', [{ from: [{ notNamespaces: ['default'], ipBlocks: ['10.9.0.0/16'] }], to: [{ ports: [22] }] }]),
    policy('allow', 'ALLOW', [{ from: [{ principals: ['cluster.local/ns/a/sa/b'] }], to: [] }]),
  ];
  const snap = translate(buildModel([svc], [pod], new VipAllocator(), undefined, policies));
  const resources = [...[...snap.shared.values()].flatMap((m) => [...m.values()]), ...snap.inbound.values()];
  assert.ok(resources.length >= 7);
  for (const r of resources) {
    const typeName = r.any.type_url.slice(TYPE_URL_PREFIX.length);
    assert.deepEqual(decodeDeep(stored, typeName, r.any.value), decodeDeep(parsed, typeName, r.any.value), r.name);
  }
});
