// Conflicting objects added to the lab's watched config while traffic flows: a Service that takes another's
// clusterIP:port, and a stale Pod record that gives a running pod's IP. The control plane reports both locations
// and counts each, none of the traffic moves, and the agents accept every resource (no NACK holds back a later
// change).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { configDir, meshConfigFile } from '../../src/lab/controlplane';
import { netnsPath } from '../../src/lab/paths';
import { admin, down, execInPod, isRoot, metricSum, podYaml, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const VIP = '198.18.128.21';

const httpPod = (name: string, node: string, app: string): string =>
  podYaml({ name, node, serviceAccount: app, app, command: ['nodemesh', 'sample', 'http', '--port', '8080', '--name', app, '--version', 'v1'] });

const MANIFEST = [
  podYaml({ name: 'client', node: 'node-a', serviceAccount: 'client', app: 'client', command: ['sleep', 'infinity'] }),
  httpPod('http-a', 'node-a', 'http'),
  httpPod('http-b', 'node-b', 'http'),
  httpPod('takeover-a', 'node-a', 'takeover'),
  httpPod('takeover-b', 'node-b', 'takeover'),
  `
apiVersion: v1
kind: Service
metadata: { name: http, namespace: default }
spec: { clusterIP: ${VIP}, selector: { app: http }, ports: [{ name: http, port: 80, targetPort: 8080, appProtocol: http }] }
`,
].join('\n');

// Named to sort after "http": before conflicts were handled, its VIP listener replaced http's.
const TAKEOVER = `apiVersion: v1
kind: Service
metadata: { name: zz-takeover, namespace: default }
spec:
  clusterIP: ${VIP}
  selector: { app: takeover }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

describe('config conflicts in the lab', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('vc');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  /** Pods answering `count` requests to the VIP, each on a new connection; failures as "error:...". */
  async function answers(count: number): Promise<string[]> {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${VIP}/`, '--count', String(count), '--new-connections']);
    return r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const a = JSON.parse(l) as { ok: boolean; body?: { pod: string }; error?: string; status?: number };
        return a.ok ? a.body!.pod : `error:${a.error ?? a.status}`;
      });
  }

  /** GET on the lab control plane's HTTP port (inside the lab's fabric namespace). */
  function controlPlaneGet(p: string): string {
    const script = `require('http').get('http://127.0.0.1:15014${p}', (r) => r.pipe(process.stdout)).on('error', (e) => { console.error(e.message); process.exit(1); })`;
    const r = spawnSync('nsenter', [`--net=${netnsPath(state.fabricNetns)}`, process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  it('1. traffic to the original Service never reaches the new one\'s pods; the conflict is logged with both locations, counted and shown', async () => {
    assert.deepEqual([...new Set(await answers(20))].sort(), ['http-a', 'http-b'], 'before: both endpoints of http answer');
    const cpLog = state.controlPlane!.log;
    const takeoverFile = path.join(configDir(lab), 'takeover.yaml');
    let flowing = true;
    const during: string[] = [];
    let written = -1;
    const traffic = (async () => {
      while (flowing) during.push(...(await answers(20)));
    })();
    await waitFor('traffic to flow', async () => during.length >= 20, 20_000);
    written = during.length;
    fs.writeFileSync(takeoverFile, TAKEOVER);
    const line = await waitFor(
      'the control plane to report the conflict',
      async () => fs.readFileSync(cpLog, 'utf8').split('\n').find((l) => l.includes('config conflict:')),
      5000,
    );
    // the agents have had the new config for a while when this many more requests have been answered
    await waitFor('traffic after the conflict', async () => during.length >= written + 100, 30_000);
    flowing = false;
    await traffic;

    assert.match(line, new RegExp(`${takeoverFile}:1`), 'the new Service\'s location');
    assert.match(line, new RegExp(`${meshConfigFile(lab)}:\\d+`), 'the original Service\'s location');
    assert.match(line, /"level":"error"/);
    const moved = during.filter((p) => p !== 'http-a' && p !== 'http-b');
    assert.deepEqual(moved, [], `every answer during and after the change came from http's pods (${during.length} requests, ${during.length - written} after the write)`);

    const debug = JSON.parse(controlPlaneGet('/debug/config')) as { conflicts: { kind: string; kept: { object: string }; refused: { object: string }; vip: string }[] };
    assert.deepEqual(
      debug.conflicts.map((c) => [c.kind, c.vip, c.kept.object, c.refused.object]),
      [['vip', VIP, 'Service default/http', 'Service default/zz-takeover']],
    );
    assert.equal(metricSum(controlPlaneGet('/metrics'), 'nodemesh_config_conflicts_total', { kind: 'vip' }), 1);
    for (const node of ['node-a', 'node-b']) {
      const dump = JSON.parse(await admin(lab, node, '/config_dump')) as { services: { clusters: { host: string }[] } };
      assert.ok(dump.services.clusters.some((c) => c.host.startsWith('zz-takeover.')), `${node} has the new Service (by name), only not its VIP`);
    }

    fs.rmSync(takeoverFile);
    await waitFor('the conflict resolved', async () => fs.readFileSync(cpLog, 'utf8').includes('config conflict resolved:'), 5000);
    // 20 answers: with two endpoints picked at random, both answer unless something is wrong (p = 2^-19)
    assert.deepEqual([...new Set(await answers(20))].sort(), ['http-a', 'http-b']);
  });

  it("2. a Pod record giving a running pod's IP: reported and counted, the pod keeps its traffic, its node's agent NACKs nothing", async () => {
    const httpB = state.pods.find((p) => p.name === 'http-b')!;
    const cpLog = state.controlPlane!.log;
    const staleFile = path.join(configDir(lab), 'stale-pod.yaml');
    // the same pod under another namespace (a copy with its namespace changed), on the same node with the same IP
    fs.writeFileSync(
      staleFile,
      `apiVersion: v1
kind: Pod
metadata: { name: http-b, namespace: shop, labels: { app: http } }
spec: { nodeName: node-b, serviceAccountName: http, containers: [{ name: main }] }
status: { podIP: ${httpB.ip} }
`,
    );
    const line = await waitFor(
      'the control plane to report the conflict',
      async () => fs.readFileSync(cpLog, 'utf8').split('\n').find((l) => l.includes('config conflict:') && l.includes(httpB.ip)),
      5000,
    );
    assert.match(line, new RegExp(`${staleFile}:1`), "the stale record's location");
    assert.match(line, new RegExp(`${meshConfigFile(lab)}:\\d+`), "the running pod's location");
    const debug = JSON.parse(controlPlaneGet('/debug/config')) as { conflicts: { kind: string; ip?: string; kept: { object: string }; refused: { object: string } }[] };
    assert.deepEqual(
      debug.conflicts.filter((c) => c.kind === 'pod-ip').map((c) => [c.ip, c.kept.object, c.refused.object]),
      [[httpB.ip, 'Pod default/http-b', 'Pod shop/http-b']],
    );
    assert.equal(metricSum(controlPlaneGet('/metrics'), 'nodemesh_config_conflicts_total', { kind: 'pod-ip' }), 1);

    // A change after the conflict reaches node-b: a NACKed inbound listener would have held back every listener.
    fs.writeFileSync(
      path.join(configDir(lab), 'later.yaml'),
      `apiVersion: v1
kind: Service
metadata: { name: later, namespace: default }
spec: { clusterIP: 198.18.128.22, selector: { app: http }, ports: [{ name: http, port: 80, targetPort: 8080, appProtocol: http }] }
`,
    );
    await waitFor('node-b to have the later Service', async () => (await admin(lab, 'node-b', '/config_dump')).includes('later.default.'), 10_000);
    for (const node of ['node-a', 'node-b']) {
      assert.equal(metricSum(await admin(lab, node, '/metrics'), 'nodemesh_xds_nacks_sent_total'), 0, `${node} rejected no xDS response`);
    }
    assert.deepEqual([...new Set(await answers(20))].sort(), ['http-a', 'http-b'], 'http-b still answers at its IP');

    fs.rmSync(staleFile);
    await waitFor(
      'the conflict resolved',
      async () => fs.readFileSync(cpLog, 'utf8').split('\n').some((l) => l.includes('config conflict resolved:') && l.includes(httpB.ip)),
      5000,
    );
  });
});
