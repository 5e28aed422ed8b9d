// The saved xDS config: bytes round-trip, a save copies what it is given only a handle for from the file it
// replaces, the file stays one JSON document (an earlier build reads it whole), and an earlier build's file loads.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { XdsStateFile } from '../../src/agent/xds-state-file';
import type { XdsSnapshot } from '../../src/xds/ads-client';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-xds-state-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

function snapshot(): XdsSnapshot {
  return {
    node: 'node-a',
    savedAt: '2026-12-07T00:00:00.000Z',
    types: [
      {
        typeUrl: CDS,
        versionInfo: 'v1',
        resources: [
          { name: 'c1', version: '1', any: { type_url: CDS, value: bytes('cluster one') } },
          { name: 'c2 ü,\n', version: '2', any: { type_url: CDS, value: Buffer.from([0, 10, 44, 255]) } },
        ],
      },
      { typeUrl: LDS, versionInfo: 'v2', resources: [] },
      { typeUrl: LDS, versionInfo: 'v3', resources: [{ name: 'l1', version: '3', any: { type_url: LDS, value: bytes('listener') } }] },
    ],
  };
}

/** What a snapshot says, without handles. */
function plain(s: XdsSnapshot): unknown {
  return { ...s, types: s.types.map((t) => ({ ...t, resources: t.resources.map((r) => ({ name: r.name, version: r.version, typeUrl: r.any?.type_url, value: r.any && Buffer.from(r.any.value).toString('hex') })) })) };
}

test('a saved config loads with the same bytes, and each resource with its handle', () => {
  const f = new XdsStateFile(dir);
  const handles = f.save(snapshot());
  assert.deepEqual(handles, [[0, 1], [], [2]]);
  assert.equal(fs.statSync(f.path).mode & 0o777, 0o600);
  const loaded = new XdsStateFile(dir).load()!;
  assert.deepEqual(plain(loaded), plain(snapshot()));
  assert.deepEqual(
    loaded.types.map((t) => t.resources.map((r) => r.saved)),
    [[0, 1], [], [2]],
  );
  f.close();
});

test('a save given handles copies those resources from the file it replaces', () => {
  const f = new XdsStateFile(dir);
  const h = f.save(snapshot());
  const next = snapshot();
  next.savedAt = '2026-12-07T00:00:01.000Z';
  // c1 unchanged (handle only), c2 removed, c3 new, l1 unchanged
  next.types[0]!.resources = [
    { name: 'c1', version: '1', saved: h[0]![0] },
    { name: 'c3', version: '4', any: { type_url: CDS, value: bytes('cluster three') } },
  ];
  next.types[2]!.resources = [{ name: 'l1', version: '3', saved: h[2]![0] }];
  const h2 = f.save(next);
  // and again from that file: handles refer to the latest save
  const again = f.save({ ...next, types: next.types.map((t, i) => ({ ...t, resources: t.resources.map((r, j) => ({ name: r.name, version: r.version, saved: h2[i]![j] })) })) });
  assert.deepEqual(again, h2);
  const loaded = new XdsStateFile(dir).load()!;
  assert.deepEqual(
    loaded.types.map((t) => t.resources.map((r) => [r.name, r.version, r.any!.value.toString()])),
    [[['c1', '1', 'cluster one'], ['c3', '4', 'cluster three']], [], [['l1', '3', 'listener']]],
  );
  f.close();
});

test('the file is one JSON document of version 1, which an earlier build reads whole', () => {
  const f = new XdsStateFile(dir);
  f.save(snapshot());
  f.close();
  const doc = JSON.parse(fs.readFileSync(path.join(dir, 'xds.json'), 'utf8'));
  assert.equal(doc.version, 1);
  assert.equal(doc.node, 'node-a');
  assert.deepEqual(
    doc.types.map((t: { resources: { name: string; value: string }[] }) => t.resources.map((r) => [r.name, Buffer.from(r.value, 'base64').toString('hex')])),
    [[['c1', bytes('cluster one').toString('hex')], ['c2 ü,\n', '000a2cff']], [], [['l1', bytes('listener').toString('hex')]]],
  );
});

test("an earlier build's file (one line) loads, without handles", () => {
  const s = snapshot();
  const body = {
    version: 1,
    node: s.node,
    savedAt: s.savedAt,
    types: s.types.map((t) => ({ typeUrl: t.typeUrl, versionInfo: t.versionInfo, resources: t.resources.map((r) => ({ name: r.name, version: r.version, typeUrl: r.any!.type_url, value: r.any!.value.toString('base64') })) })),
  };
  fs.writeFileSync(path.join(dir, 'xds.json'), JSON.stringify(body), { mode: 0o600 });
  const f = new XdsStateFile(dir);
  const loaded = f.load()!;
  assert.deepEqual(plain(loaded), plain(s));
  assert.ok(loaded.types.every((t) => t.resources.every((r) => r.saved === undefined)));
  // a handle it never gave is refused, and the file stays as it was
  assert.throws(() => f.save({ ...s, types: [{ typeUrl: CDS, versionInfo: 'v9', resources: [{ name: 'c1', version: '1', saved: 0 }] }] }), /neither bytes nor a place/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'xds.json'), 'utf8')), body);
  assert.deepEqual(fs.readdirSync(dir), ['xds.json'], 'no temp file left');
});

test('a cut or foreign file is refused; no file is null', () => {
  assert.equal(new XdsStateFile(dir).load(), null);
  const f = new XdsStateFile(dir);
  f.save(snapshot());
  f.close();
  const text = fs.readFileSync(path.join(dir, 'xds.json'), 'utf8');
  fs.writeFileSync(path.join(dir, 'xds.json'), text.slice(0, text.lastIndexOf(']}', text.length - 4)));
  assert.throws(() => new XdsStateFile(dir).load(), /not a saved xDS config of this version/);
  fs.writeFileSync(path.join(dir, 'xds.json'), JSON.stringify({ version: 2, node: 'x', types: [] }));
  assert.throws(() => new XdsStateFile(dir).load(), /not a saved xDS config of this version/);
});

test('a save copying more than a read-ahead of resources, in and out of file order, copies each exactly', () => {
  const f = new XdsStateFile(dir);
  // ~3 MB of resources (three read-aheads), each its own bytes.
  const n = 3000;
  const value = (i: number, v: number): Buffer => Buffer.alloc(700 + (i % 300), `${v}:${i};`);
  const first: XdsSnapshot = { node: 'node-a', savedAt: 't0', types: [{ typeUrl: CDS, versionInfo: 'v1', resources: Array.from({ length: n }, (_, i) => ({ name: `c${i}`, version: '1', any: { type_url: CDS, value: value(i, 1) } })) }] };
  const h = f.save(first);
  // Every other resource kept (by handle), in file order, then a run backwards; the rest new.
  const order = [...Array.from({ length: n / 2 }, (_, k) => 2 * k), ...Array.from({ length: n / 2 }, (_, k) => n - 1 - 2 * k)];
  const next: XdsSnapshot = {
    node: 'node-a',
    savedAt: 't1',
    types: [{ typeUrl: CDS, versionInfo: 'v2', resources: order.map((i) => (i % 2 === 0 ? { name: `c${i}`, version: '1', saved: h[0]![i] } : { name: `c${i}`, version: '2', any: { type_url: CDS, value: value(i, 2) } })) }],
  };
  f.save(next);
  f.close();
  const loaded = new XdsStateFile(dir).load()!;
  assert.equal(loaded.types[0]!.resources.length, n);
  loaded.types[0]!.resources.forEach((r, k) => {
    const i = order[k]!;
    assert.equal(r.name, `c${i}`);
    assert.ok(Buffer.from(r.any!.value).equals(value(i, i % 2 === 0 ? 1 : 2)), `c${i}`);
  });
});
