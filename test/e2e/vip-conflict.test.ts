// A Service that takes another's clusterIP:port, added to the lab's watched config while traffic flows to the
// original: the control plane reports both locations and counts it, and none of the traffic moves.

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

describe('a Service taking another one\'s VIP in the lab', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
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
});
