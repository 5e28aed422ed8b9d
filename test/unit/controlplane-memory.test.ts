// What the control plane keeps between rebuilds, kept small: each piece's bytes in one allocation of their size,
// digests instead of texts, documents as written only where they are shown, the heap's growth bounded.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { test } from 'node:test';
import { encodedResource, makeResource, makeResources, ownBytes } from '../../src/controlplane/encoded-resource';
import { FileSource, type ConfigSink } from '../../src/controlplane/file-source';
import { HeapGrowth } from '../../src/controlplane/heap-growth';
import { buildModel } from '../../src/controlplane/model';
import type { PodObject, ServiceObject, StoredObject } from '../../src/controlplane/objects';
import { ObjectStore, type SourceUpdate } from '../../src/controlplane/store';
import { translate } from '../../src/controlplane/translate';
import { TranslationMemo } from '../../src/controlplane/translate-memo';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { createLogger } from '../../src/telemetry/logger';
import { encodeMessage } from '../../src/xds/protos';
import { CDS, CLUSTER_TYPE, EDS, LDS, RDS } from '../../src/xds/resource-types';

function svc(name: string, ports = 1): ServiceObject {
  return {
    kind: 'Service',
    meta: { name, namespace: 'default', uid: name, labels: {}, annotations: {} },
    selector: { app: name },
    ports: Array.from({ length: ports }, (_, i) => ({ name: `http-${i}`, port: 80 + i, protocol: 'TCP' as const, targetPort: 8080, appProtocol: 'http' })),
  };
}

function pod(name: string, app: string, ip: string): PodObject {
  return {
    kind: 'Pod',
    meta: { name, namespace: 'default', uid: `uid-${name}`, labels: { app }, annotations: {} },
    nodeName: 'n1',
    serviceAccount: 'sa',
    containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }],
    podIP: ip,
    ready: true,
    inMesh: true,
  };
}

const ownsItsBuffer = (b: Uint8Array): boolean => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

test('ownBytes: the parts in one allocation of exactly their size, each part a view with its bytes', () => {
  const parts = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh')];
  const out = ownBytes(parts);
  assert.equal(out.length, 3);
  assert.deepEqual(out.map((b) => b.toString()), ['abc', '', 'defgh']);
  for (const b of out) assert.equal(b.buffer, out[0]!.buffer);
  assert.equal(out[0]!.buffer.byteLength, 8);
  // Copies: the inputs can be reused.
  parts[0]!.write('xyz');
  assert.equal(out[0]!.toString(), 'abc');
});

test('a resource never keeps a slice of the shared buffer pool; its version is the hash of its bytes', () => {
  // Small encoder outputs come from Node's 8 KiB pool.
  const bytes = encodeMessage(CLUSTER_TYPE, { name: 'c' });
  assert.ok(!ownsItsBuffer(bytes), 'the encoder returned a pool slice (what this test is about)');
  const r = encodedResource(CDS, 'c', bytes);
  assert.ok(ownsItsBuffer(r.any.value));
  assert.deepEqual(r.any.value, bytes);
  assert.equal(r.any.type_url, CDS);
  assert.equal(r.version, makeResource(CDS, 'c', { name: 'c' }).version);
  assert.equal(r.message.name, 'c');
  // Bytes that already own their buffer are kept as they are.
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  assert.equal(encodedResource(CDS, 'c', own).any.value, own);

  const several = makeResources([
    { typeUrl: CDS, name: 'a', message: { name: 'a' } },
    { typeUrl: CDS, name: 'bb', message: { name: 'bb' } },
  ]);
  assert.equal(several[0]!.any.value.buffer, several[1]!.any.value.buffer);
  assert.equal(several[0]!.any.value.buffer.byteLength, several[0]!.any.value.length + several[1]!.any.value.length);
  assert.deepEqual(several.map((r) => r.version), [makeResource(CDS, 'a', { name: 'a' }).version, makeResource(CDS, 'bb', { name: 'bb' }).version]);
});

test('translation: a Service\'s resources share one allocation of their size; pods\' pieces own theirs', () => {
  const snap = translate(buildModel([svc('a', 2), svc('b')], [pod('a1', 'a', '10.0.0.1'), pod('b1', 'b', '10.0.0.2')], new VipAllocator()));
  const all = [CDS, EDS, LDS, RDS].flatMap((t) => [...snap.shared.get(t)!.values()]);
  const groups = new Map<ArrayBufferLike, string[]>();
  for (const r of all) groups.set(r.any.value.buffer, [...(groups.get(r.any.value.buffer) ?? []), `${r.typeUrl.split('.').pop()} ${r.name}`]);
  const groupOf = (cluster: string): string[] => groups.get(snap.shared.get(CDS)!.get(cluster)!.any.value.buffer)!;
  // Per HTTP port: Cluster, endpoints, the VIP and API Listeners, the route table and the API route table.
  assert.equal(groupOf('outbound|80||a.default.svc.cluster.local').length, 12);
  assert.ok(groupOf('outbound|80||a.default.svc.cluster.local').includes('Cluster outbound|81||a.default.svc.cluster.local'));
  assert.equal(groupOf('outbound|80||b.default.svc.cluster.local').length, 6);
  for (const r of all) {
    const bytes = all.filter((o) => o.any.value.buffer === r.any.value.buffer).reduce((n, o) => n + o.any.value.length, 0);
    assert.equal(r.any.value.buffer.byteLength, bytes, `${r.name}: its allocation holds only its piece's bytes`);
  }
  // The directory part, the passthrough cluster and the node's inbound Listener own their bytes.
  for (const r of [...snap.shared.get(EDS)!.values(), ...snap.shared.get(CDS)!.values()].filter((r) => !r.name.includes('.svc.'))) assert.ok(ownsItsBuffer(r.any.value), r.name);
  for (const r of snap.inbound.values()) assert.ok(ownsItsBuffer(r.any.value), r.name);
});

test('TranslationMemo.text keeps a digest: equal for equal text, new only for a new object with other text', () => {
  const memo = new TranslationMemo();
  memo.begin();
  const a = { x: 1 };
  const t1 = memo.text('id', a, () => JSON.stringify(a));
  assert.notEqual(t1, JSON.stringify(a));
  assert.ok(t1.length < 40);
  let calls = 0;
  assert.equal(memo.text('id', a, () => (calls++, 'other')), t1);
  assert.equal(calls, 0, 'the same object is not turned into text again');
  assert.equal(memo.text('id', { x: 1 }, () => JSON.stringify({ x: 1 })), t1);
  assert.notEqual(memo.text('id', { x: 2 }, () => JSON.stringify({ x: 2 })), t1);
  // Nothing to text (no routes) still compares.
  assert.equal(memo.text('u', undefined, () => JSON.stringify(undefined)), memo.text('u2', undefined, () => JSON.stringify(undefined)));
});

test('the store keeps the document as written only for routes; errors still point at file:line', () => {
  const yaml = `apiVersion: v1
kind: Service
metadata: { name: s, namespace: default }
spec:
  ports: [{ port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: s, port: 80 }]
---
apiVersion: v1
kind: Service
metadata: { name: bad, namespace: default }
spec:
  ports: [{ port: -1 }]
`;
  const update = parseYamlSource('file:/x.yaml', '/x.yaml', yaml);
  // What the parser hands over is whole (fuzz targets validate it again).
  assert.ok(update.documents.every((d) => d.status !== 'ok' || d.stored.raw !== undefined));
  const store = new ObjectStore();
  const r = store.apply(update);
  const bad = r.issues.find((i) => i.name === 'bad');
  assert.equal(bad?.file, '/x.yaml');
  assert.equal(bad?.line, 17);
  const stored = (key: string): StoredObject => store.get(key)!;
  assert.equal(stored('Service/default/s').raw, undefined);
  assert.equal(stored('Service/default/s').origin.line, 1);
  assert.deepEqual((stored('HTTPRoute/default/r').raw as { metadata: unknown }).metadata, { name: 'r', namespace: 'default' });
});

test('FileSource keeps digests, not texts: an unchanged file pushes nothing; an emptied file is read once more, then applied', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cpmem-'));
  const file = path.join(dir, 'a.yaml');
  const applied: SourceUpdate[] = [];
  const sink: ConfigSink = { apply: (u) => void applied.push(u), remove: () => undefined };
  const src = new FileSource(dir, sink, createLogger({ level: 'silent' }), 10);
  try {
    fs.writeFileSync(file, 'apiVersion: v1\nkind: Service\nmetadata: { name: s }\nspec:\n  ports: [{ port: 80 }]\n');
    await src.start();
    assert.equal(applied.length, 1);
    const seen = (src as unknown as { seen: Map<string, string> }).seen;
    assert.ok(seen.get(file)!.length < 40, 'a digest is kept, not the text');
    // Touched, same content: nothing.
    fs.writeFileSync(file, fs.readFileSync(file));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(applied.length, 1);
    // Emptied: taken as a possible half-written file once, then applied as empty.
    fs.writeFileSync(file, '  \n');
    await waitFor(() => applied.length === 2);
    assert.equal(applied[1]!.documents.length, 0);
    // Blank again (other whitespace): nothing more.
    fs.writeFileSync(file, '\n');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(applied.length, 2);
  } finally {
    src.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(ok());
}

test('HeapGrowth: about the headroom over the heap in use, within 20-100 %; 0 leaves V8 alone', () => {
  const MB = 1048576;
  const g = new HeapGrowth(160);
  assert.equal(g.adjust(400 * MB), 40);
  assert.equal(g.adjust(2000 * MB), 20);
  assert.equal(g.adjust(100 * MB), 100);
  assert.equal(new HeapGrowth(0).adjust(400 * MB), undefined);
  for (const bad of [-1, 1.5, 65537, Number.NaN]) assert.throws(() => new HeapGrowth(bad), RangeError);
  // The rest of this test process runs with V8's own factor again.
  v8.setFlagsFromString('--heap-growing-percent=0');
});
