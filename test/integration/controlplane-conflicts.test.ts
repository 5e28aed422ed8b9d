// Config conflicts through a running control plane watching a directory: a Service added with another's
// clusterIP:port, a pod giving another's IP, and a second copy of an object in another file, are logged with both
// locations, counted, shown in /debug/config, and never change what the older object serves.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { ConflictReport } from '../../src/controlplane/conflicts';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { decodeResource } from '../../src/xds/agent-resources';
import { LDS } from '../../src/xds/resource-types';
import { waitFor } from '../helpers/wait';

const VIP = '198.18.128.21';

function service(name: string, app: string, clusterIP = VIP): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${clusterIP}
  selector: { app: ${app} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
}

function pod(name: string, namespace: string): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${namespace}, labels: { app: web } }
spec: { nodeName: n2, serviceAccountName: web, containers: [{ name: web, ports: [{ name: http, containerPort: 8080 }] }] }
status: { podIP: 198.19.2.10 }
`;
}

describe('config conflicts in a watched directory', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-conflicts-'));
  const lines: { msg: string; level: string; kept?: { at: string }; refused?: { at: string } }[] = [];
  const logger = pino(
    { level: 'info', formatters: { level: (label) => ({ level: label }) } },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    }),
  );
  let cp: ControlPlaneHandle;
  const vipTarget = (): string | undefined =>
    (cp.snapshot().shared.get(LDS)!.get(`vip|${VIP}:80`)?.message as { filter_chains: { name: string }[] } | undefined)?.filter_chains[0]?.name;
  const conflicts = (): ConflictReport[] => (cp.debugConfig() as { conflicts: ConflictReport[] }).conflicts;
  const metric = async (name: string, kind: string): Promise<number> => {
    const m = (await cp.metrics.registry.getSingleMetric(name)!.get()).values.find((v) => v.labels.kind === kind);
    return m?.value ?? 0;
  };

  before(async () => {
    fs.writeFileSync(path.join(dir, 'lab.yaml'), service('http', 'http'));
    cp = await startControlPlane({ config: dir, xdsAddress: '127.0.0.1:0', metricsPort: false, logger, watchDebounceMs: 10, pushDebounceMs: 10 });
  });
  after(async () => {
    await cp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a Service added with the clusterIP:port of an existing one: reported with both file:line, counted, the VIP stays', async () => {
    assert.equal(vipTarget(), 'outbound|80||http.default.svc.cluster.local');
    // a name sorting after "http", so that without conflict handling its listener would replace http's
    fs.writeFileSync(path.join(dir, 'a-takeover.yaml'), `# added later\n${service('zz-takeover', 'takeover')}`);
    await waitFor('the conflict', async () => conflicts().length === 1, 5000);
    const [c] = conflicts();
    assert.equal(c!.kind, 'vip');
    assert.deepEqual(c!.kept, { object: 'Service default/http', at: `${path.join(dir, 'lab.yaml')}:1` });
    assert.deepEqual(c!.refused, { object: 'Service default/zz-takeover', at: `${path.join(dir, 'a-takeover.yaml')}:2` });
    assert.equal(vipTarget(), 'outbound|80||http.default.svc.cluster.local', 'the VIP still leads to the older Service');
    const logged = lines.filter((l) => l.msg.startsWith('config conflict:'));
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.level, 'error');
    assert.match(logged[0]!.msg, new RegExp(`${path.join(dir, 'a-takeover.yaml')}:2.*${VIP} TCP/80.*${path.join(dir, 'lab.yaml')}:1`));
    assert.equal(await metric('nodemesh_config_conflicts_total', 'vip'), 1);
    assert.equal(await metric('nodemesh_config_conflicts_open', 'vip'), 1);
    // an unrelated change rebuilds without reporting the conflict again
    fs.writeFileSync(path.join(dir, 'other.yaml'), service('other', 'other', '198.18.128.99'));
    await waitFor('the unrelated Service', async () => cp.snapshot().shared.get(LDS)!.has('vip|198.18.128.99:80'), 5000);
    assert.equal(lines.filter((l) => l.msg.startsWith('config conflict:')).length, 1);
    assert.equal(await metric('nodemesh_config_conflicts_total', 'vip'), 1);
  });

  it('a second copy of an object in another file: both locations reported, the first stays in force', async () => {
    fs.writeFileSync(path.join(dir, '0-copy.yaml'), service('http', 'impostor', '198.18.128.50'));
    await waitFor('the duplicate', async () => conflicts().some((c) => c.kind === 'duplicate'), 5000);
    const d = conflicts().find((c) => c.kind === 'duplicate')!;
    assert.equal(d.kept.at, `${path.join(dir, 'lab.yaml')}:1`);
    assert.equal(d.refused.at, `${path.join(dir, '0-copy.yaml')}:1`);
    const http = (cp.debugConfig() as { objects: { key: string; origin: { file: string } }[] }).objects.find((o) => o.key === 'Service/default/http')!;
    assert.equal(http.origin.file, path.join(dir, 'lab.yaml'));
    assert.equal(vipTarget(), 'outbound|80||http.default.svc.cluster.local');
    assert.equal(await metric('nodemesh_config_conflicts_total', 'duplicate'), 1);
  });

  it("a pod giving another's IP: reported with both file:line, counted; the node's inbound listener keeps the older pod and decodes", async () => {
    const inboundChains = (): string[] =>
      ((cp.snapshot().inbound.get('n2')?.message as { filter_chains: { name: string }[] } | undefined)?.filter_chains ?? []).map((c) => c.name);
    fs.writeFileSync(path.join(dir, 'pods.yaml'), pod('web-4', 'shop'));
    await waitFor('the pod', async () => inboundChains().some((n) => n.includes('shop/web-4')), 5000);
    const before = inboundChains();
    // the fuzzer's find: the same pod again with its namespace key misspelt, so in "default", with the same IP
    fs.writeFileSync(path.join(dir, 'z-pods.yaml'), `# copied\n${pod('web-4', 'default')}`);
    await waitFor('the pod-ip conflict', async () => conflicts().some((c) => c.kind === 'pod-ip'), 5000);
    const c = conflicts().find((x) => x.kind === 'pod-ip')!;
    assert.equal(c.ip, '198.19.2.10');
    assert.deepEqual(c.kept, { object: 'Pod shop/web-4', at: `${path.join(dir, 'pods.yaml')}:1` });
    assert.deepEqual(c.refused, { object: 'Pod default/web-4', at: `${path.join(dir, 'z-pods.yaml')}:2` });
    assert.deepEqual(inboundChains(), before, "the node's inbound listener still serves the older pod alone");
    const inbound = cp.snapshot().inbound.get('n2')!;
    assert.ok(decodeResource(inbound.typeUrl, inbound.any).resource, 'an agent accepts the inbound listener');
    const logged = lines.filter((l) => l.msg.startsWith('config conflict:') && l.msg.includes('198.19.2.10'));
    assert.equal(logged.length, 1);
    assert.match(logged[0]!.msg, /Pod default\/web-4 .*z-pods.yaml:2.* gives IP 198.19.2.10, which the older Pod shop\/web-4 .*pods.yaml:1/);
    assert.equal(await metric('nodemesh_config_conflicts_total', 'pod-ip'), 1);
    assert.equal(await metric('nodemesh_config_conflicts_open', 'pod-ip'), 1);
  });

  it('fixing the config resolves the conflicts, logged as such', async () => {
    fs.rmSync(path.join(dir, '0-copy.yaml'));
    fs.rmSync(path.join(dir, 'a-takeover.yaml'));
    fs.rmSync(path.join(dir, 'z-pods.yaml'));
    await waitFor('no conflict left', async () => conflicts().length === 0, 5000);
    assert.equal(lines.filter((l) => l.msg.startsWith('config conflict resolved:')).length, 3);
    for (const kind of ['vip', 'pod-ip', 'duplicate']) assert.equal(await metric('nodemesh_config_conflicts_open', kind), 0, kind);
  });
});
