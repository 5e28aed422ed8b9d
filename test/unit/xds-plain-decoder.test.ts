// Unit: the one-pass decoder (src/xds/plain-decoder.ts) gives exactly what protobufjs' decode + toObject gave:
// the same values and key order, on every resource the scale bench's config translates to (nested Anys
// included), on the xds-resources fuzz seeds and regressions, and on cut and flipped copies of them (the same
// objects or the same errors).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { buildModel } from '../../src/controlplane/model';
import { policyObjects } from '../../src/controlplane/policy';
import { buildRouteModel, invalidIssues, storedRoutes } from '../../src/controlplane/routes/route-tables';
import { ObjectStore } from '../../src/controlplane/store';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { decodePlain } from '../../src/xds/plain-decoder';
import { adsServiceDefinition, DECODE_OPTIONS, decodeMessage, encodeMessage, messageType, toAny } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE, EDS, ENDPOINT_TYPE, LDS, LISTENER_TYPE, RDS, ROUTE_TYPE, TYPE_URL_PREFIX } from '../../src/xds/resource-types';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TYPE_OF: Record<string, string> = { [CDS]: CLUSTER_TYPE, [EDS]: ENDPOINT_TYPE, [LDS]: LISTENER_TYPE, [RDS]: ROUTE_TYPE };
const SEED_TYPES = [CDS, EDS, LDS, RDS];

interface ScaleConfig {
  writeConfig(dir: string, opts: { services: number; pods: number; namespaces?: number; nodes?: number }): unknown;
}

/** What protobufjs gave before: an instance, then toObject. */
function oldDecode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = messageType(typeName);
  return t.toObject(t.decode(bytes), DECODE_OPTIONS) as Record<string, unknown>;
}

/** deepStrictEqual, and the same key order everywhere (what JSON.stringify or a for-in would see). */
function assertSame(actual: unknown, expected: unknown, where: string): void {
  assert.deepStrictEqual(actual, expected, where);
  const order = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(order);
    if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString('hex')}`;
    if (v && typeof v === 'object') return Object.keys(v).map((k) => [k, order((v as Record<string, unknown>)[k])]);
    return v;
  };
  assert.deepStrictEqual(order(actual), order(expected), `${where}: key order`);
}

/** Every Any in a decoded tree whose type the descriptor has. */
function nestedAnys(v: unknown, out: { type_url: string; value: Uint8Array }[] = []): { type_url: string; value: Uint8Array }[] {
  if (Array.isArray(v)) for (const x of v) nestedAnys(x, out);
  else if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    if (typeof o.type_url === 'string' && o.value instanceof Uint8Array && o.type_url.startsWith(TYPE_URL_PREFIX)) out.push(o as { type_url: string; value: Uint8Array });
    for (const k of Object.keys(o)) nestedAnys(o[k], out);
  }
  return out;
}

/** Decodes `bytes` both ways and compares, then every nested Any the same way; returns how many messages. */
function compareDeep(typeName: string, bytes: Uint8Array, where: string): number {
  const expected = oldDecode(typeName, bytes);
  assertSame(decodeMessage(typeName, bytes), expected, where);
  let n = 1;
  for (const any of nestedAnys(expected)) {
    const name = any.type_url.slice(TYPE_URL_PREFIX.length);
    let known = true;
    try {
      messageType(name);
    } catch {
      known = false;
    }
    // A nested Any's bytes may be bad (a fuzz regression's are): then both must refuse them alike.
    if (known) n += compareOrThrow(name, any.value, `${where} > ${name}`) === 'same' ? compareDeep(name, any.value, `${where} > ${name}`) : 1;
  }
  return n;
}

/** Both decoders give the same object, or both throw the same error. */
function compareOrThrow(typeName: string, bytes: Uint8Array, where: string): 'same' | 'threw' {
  let expected: Record<string, unknown> | undefined;
  let oldErr: Error | undefined;
  try {
    expected = oldDecode(typeName, bytes);
  } catch (e) {
    oldErr = e as Error;
  }
  if (oldErr) {
    // A map entry without its message value: protobufjs' toObject failed on the null; this decoder names it.
    const same = (e: Error): boolean => e.message === oldErr.message || (/^Cannot read properties of null/.test(oldErr.message) && /a map entry without its value$/.test(e.message));
    assert.throws(() => decodeMessage(typeName, bytes), (e: unknown) => same(e as Error), `${where}: should throw ${oldErr.message}`);
    return 'threw';
  }
  assertSame(decodeMessage(typeName, bytes), expected, where);
  return 'same';
}

function seedFiles(): { name: string; bytes: Buffer }[] {
  const dir = path.join(ROOT, 'test', 'fuzz', 'corpus', 'xds-resources');
  return ['seeds', 'regressions'].flatMap((sub) =>
    fs.existsSync(path.join(dir, sub)) ? fs.readdirSync(path.join(dir, sub)).map((f) => ({ name: `${sub}/${f}`, bytes: fs.readFileSync(path.join(dir, sub, f)) })) : [],
  );
}

test('every resource of the scale bench config (nested Anys included) decodes exactly as decode + toObject did', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-plain-decoder-'));
  try {
    // A small plan of the bench's shape: HTTP and TCP Services, second ports, pods over nodes and namespaces.
    const config = (await import(path.join(ROOT, 'bench', 'lib', 'xds-scale-config.js'))) as ScaleConfig;
    config.writeConfig(dir, { services: 120, pods: 240, namespaces: 12, nodes: 6 });
    const store = new ObjectStore();
    for (const f of fs.readdirSync(dir).sort()) store.apply(parseYamlSource(f, path.join(dir, f), fs.readFileSync(path.join(dir, f), 'utf8')));
    const model = buildModel(store.services(), store.pods(), new VipAllocator(), undefined, policyObjects(store));
    model.routes = buildRouteModel(model.services, storedRoutes(store), invalidIssues(store.issues()));
    const snap = translate(model);
    const resources = [...[...snap.shared.values()].flatMap((m) => [...m.values()]), ...snap.inbound.values()];
    const perType = new Map<string, number>();
    let messages = 0;
    for (const r of resources) {
      messages += compareDeep(TYPE_OF[r.typeUrl]!, r.any.value, `${r.typeUrl} ${r.name}`);
      perType.set(r.typeUrl, (perType.get(r.typeUrl) ?? 0) + 1);
    }
    for (const t of SEED_TYPES) assert.ok((perType.get(t) ?? 0) > 0, `the config made no ${t}`);
    assert.equal(snap.inbound.size, 6);
    assert.ok(messages > resources.length, 'nested Anys were compared');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the fuzz seeds and regressions decode exactly as before; cut and flipped copies give the same objects or errors', () => {
  const seeds = seedFiles();
  assert.ok(seeds.length > 10);
  const outcomes = { same: 0, threw: 0 };
  for (const { name, bytes } of seeds) {
    const typeName = TYPE_OF[SEED_TYPES[bytes[0]! % 4]!]!;
    const value = bytes.subarray(1);
    let ok = true;
    try {
      oldDecode(typeName, value);
    } catch {
      ok = false;
    }
    if (ok) compareDeep(typeName, value, name);
    // Deterministic damage: cuts at several lengths, single-byte flips spread over the message.
    for (let cut = 1; cut < value.length; cut += Math.max(1, Math.floor(value.length / 23))) outcomes[compareOrThrow(typeName, value.subarray(0, cut), `${name} cut at ${cut}`)]++;
    for (let i = 0; i < value.length; i += Math.max(1, Math.floor(value.length / 31))) {
      for (const x of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(value);
        b[i] ^= x;
        outcomes[compareOrThrow(typeName, b, `${name} byte ${i} ^ ${x}`)]++;
      }
    }
  }
  assert.ok(outcomes.same > 100 && outcomes.threw > 100, JSON.stringify(outcomes));
});

test('oneofs set twice, out-of-order fields, unknown fields, packed and unpacked repeats and maps decode as before', () => {
  const w = protobuf.Writer;
  const cases: [string, Uint8Array][] = [];
  // Cluster: two members of cluster_discovery_type (type = 2, cluster_type = 38), fields in reverse id order,
  // an unknown field 999, then the name again (the last wins).
  cases.push([CLUSTER_TYPE, w.create().uint32((38 << 3) | 2).bytes(encodeMessage('envoy.config.cluster.v3.Cluster.CustomClusterType', { name: 'x' })).uint32((2 << 3) | 0).int32(3).uint32((1 << 3) | 2).string('a').uint32((999 << 3) | 0).uint64(7).uint32((1 << 3) | 2).string('b').finish()]);
  // An enum value the descriptor does not know stays a number.
  cases.push([CLUSTER_TYPE, w.create().uint32((1 << 3) | 2).string('c').uint32((2 << 3) | 0).int32(77).finish()]);
  // A listener with metadata (a map of Structs, a __proto__ key), a duration (int64 seconds) and 64-bit values.
  cases.push([LISTENER_TYPE, encodeMessage(LISTENER_TYPE, { name: 'l', listener_filters_timeout: { seconds: 2 ** 40, nanos: 5 }, metadata: { filter_metadata: { __proto__x: { fields: {} }, nodemesh: { fields: { a: { numberValue: 1.5 }, b: { listValue: { values: [{ boolValue: true }, { nullValue: 0 }] } } } } } } })]);
  const proto = w.create().uint32((1 << 3) | 2).string('__proto__').uint32((2 << 3) | 2).fork().ldelim().finish();
  cases.push(['envoy.config.core.v3.Metadata', w.create().uint32((1 << 3) | 2).bytes(proto).finish()]);
  // A route's typed_per_filter_config (map of Any) and a packed repeated enum (retriable status codes as uint32).
  cases.push([ROUTE_TYPE, encodeMessage(ROUTE_TYPE, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], retry_policy: { retriable_status_codes: [503, 504], num_retries: { value: 2 } }, typed_per_filter_config: { f: toAny(CLUSTER_TYPE, { name: 'z' }) } }] })]);
  // The same repeated field unpacked.
  const unpacked = w.create().uint32((7 << 3) | 0).uint32(503).uint32((7 << 3) | 0).uint32(504).finish();
  cases.push(['envoy.config.route.v3.RetryPolicy', unpacked]);
  // Empty bytes, and a map entry whose message value is absent (both decoders refuse it).
  cases.push([LISTENER_TYPE, new Uint8Array(0)]);
  for (const [typeName, bytes] of cases) compareOrThrowLoose(typeName, bytes);
});

/** As compareOrThrow, but the new decoder's error may say more than protobufjs' TypeError did. */
function compareOrThrowLoose(typeName: string, bytes: Uint8Array): void {
  let expected: Record<string, unknown> | undefined;
  try {
    expected = oldDecode(typeName, bytes);
  } catch {
    assert.throws(() => decodeMessage(typeName, bytes));
    return;
  }
  assertSame(decodeMessage(typeName, bytes), expected, `${typeName} ${Buffer.from(bytes).toString('hex')}`);
}

test('a map entry with no message value is refused with the field named', () => {
  const entry = protobuf.Writer.create().uint32((1 << 3) | 2).string('nodemesh').finish();
  const bytes = protobuf.Writer.create().uint32((1 << 3) | 2).bytes(entry).finish();
  assert.throws(() => oldDecode('envoy.config.core.v3.Metadata', bytes));
  assert.throws(() => decodeMessage('envoy.config.core.v3.Metadata', bytes), /Metadata\.filter_metadata: a map entry without its value/);
});

test('the ADS codecs decode a DeltaDiscoveryResponse as toObject did', () => {
  const def = adsServiceDefinition().DeltaAggregatedResources!;
  const msg = {
    system_version_info: 'v1',
    type_url: CDS,
    nonce: '3',
    removed_resources: ['gone'],
    resources: [{ name: 'a', version: '1', resource: toAny(CLUSTER_TYPE, { name: 'a' }) }],
  };
  const bytes = def.responseSerialize(msg);
  assertSame(def.responseDeserialize(bytes), oldDecode('envoy.service.discovery.v3.DeltaDiscoveryResponse', bytes), 'DeltaDiscoveryResponse');
  const t = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const req = def.requestSerialize({ type_url: CDS, resource_names_subscribe: ['*'], initial_resource_versions: { a: '1' }, response_nonce: '' });
  assertSame(def.requestDeserialize(req), t.toObject(t.decode(req), DECODE_OPTIONS), 'DeltaDiscoveryRequest');
  assertSame(decodePlain(t, req), def.requestDeserialize(req), 'decodePlain');
});
