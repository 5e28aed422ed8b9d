// Services through the lab: control plane fed by the lab file, agents following it over xDS, live changes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import type { LabState } from '../../src/lab';
import { meshConfigFile, startControlPlane, stopControlPlane } from '../../src/lab/controlplane';
import { admin, down, execInPod, isRoot, podYaml, SLOW_PUMP, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const ECHO_VIP = '198.18.128.20';
const HTTP_VIP = '198.18.128.21';

const pod = (name: string, node: string, app: string, command: string[]): string => podYaml({ name, node, serviceAccount: app, app, command });

const MANIFEST = [
  pod('client', 'node-a', 'client', ['sleep', 'infinity']),
  pod('echo-a', 'node-a', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
  pod('echo-b', 'node-b', 'echo', ['nodemesh', 'sample', 'echo', '--port', '9000']),
  pod('http-a', 'node-a', 'http', ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'http', '--version', 'v1']),
  pod('http-b', 'node-b', 'http', ['nodemesh', 'sample', 'http', '--port', '8080', '--name', 'http', '--version', 'v2']),
  `
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec: { clusterIP: ${ECHO_VIP}, selector: { app: echo }, ports: [{ port: 9000, targetPort: 9000 }] }
---
# Declared TCP: these tests are about the L4 path (per-connection round robin, istio_tcp_* series); HTTP ports
# go through the L7 proxy, which has its own tests.
apiVersion: v1
kind: Service
metadata: { name: http, namespace: default }
spec: { clusterIP: ${HTTP_VIP}, selector: { app: http }, ports: [{ name: tcp-http, port: 80, targetPort: 8080, appProtocol: tcp }] }
`,
].join('\n');

describe('services over xDS in the lab', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('sv');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  /** Pods answering `count` requests to the http VIP, each on a new connection. */
  async function httpPods(count: number): Promise<string[]> {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${HTTP_VIP}/`, '--count', String(count), '--new-connections']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { body: { pod: string } }).body.pod);
  }

  /** Rewrites the control plane's watched lab file, changing one pod's app label. */
  function relabel(podName: string, app: string): void {
    const file = meshConfigFile(lab);
    const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
    for (const d of docs) if (d.getIn(['kind']) === 'Pod' && d.getIn(['metadata', 'name']) === podName) d.setIn(['metadata', 'labels', 'app'], app);
    fs.writeFileSync(`${file}.tmp`, docs.map((d) => d.toString()).join('---\n'));
    fs.renameSync(`${file}.tmp`, file);
  }

  it('1. a client calling the service VIP gets answers from the endpoints on both nodes in turn', async () => {
    const pods = await httpPods(6);
    assert.deepEqual([...new Set(pods)].sort(), ['http-a', 'http-b']);
    for (let i = 1; i < pods.length; i++) assert.notEqual(pods[i], pods[i - 1], `round robin alternates: ${pods.join(' ')}`);
    const metrics = await admin(lab, 'node-a', '/metrics');
    assert.match(metrics, /istio_tcp_connections_opened_total\{reporter="source",source_workload="client",[^}]*destination_workload="http-b",[^}]*destination_service="http\.default\.svc\.cluster\.local"/);
  });

  it('2. live change: removing and re-adding an endpoint takes effect within a second; in-flight connections survive', async () => {
    const slow = execInPod(lab, 'client', [process.execPath, SLOW_PUMP, ECHO_VIP, '9000', '2500']);
    await waitFor('the in-flight echo connection', async () =>
      (JSON.parse(await admin(lab, 'node-a', '/connections')).active as { dst: { ip: string } }[]).some((c) => c.dst.ip === ECHO_VIP),
    );
    relabel('http-b', 'http-off');
    relabel('echo-b', 'echo-off');
    relabel('echo-a', 'echo-off');
    const t0 = Date.now();
    await waitFor('node-a to drop http-b', async () => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { services: { clusters: { host: string; endpoints: { pod: string }[] }[] } };
      const http = dump.services.clusters.find((c) => c.host.startsWith('http.'));
      return http?.endpoints.length === 1 && http.endpoints[0]!.pod === 'http-a';
    }, 1000);
    const took = Date.now() - t0;
    assert.ok(took <= 1000, `took ${took} ms`);
    assert.deepEqual(await httpPods(4), ['http-a', 'http-a', 'http-a', 'http-a']);
    const r = await slow;
    assert.equal(r.code, 0, `in-flight connection broke: ${r.stdout}${r.stderr}`);
    relabel('http-b', 'http');
    relabel('echo-a', 'echo');
    relabel('echo-b', 'echo');
    await waitFor('http-b back', async () => new Set(await httpPods(2)).size === 2, 1500);
  });

  it('3. an invalid Service in the watched directory is reported with file, line and field; the last good config keeps serving', async () => {
    const cfgDir = path.dirname(meshConfigFile(lab));
    const bad = path.join(cfgDir, 'bad-service.yaml');
    fs.writeFileSync(bad, `apiVersion: v1\nkind: Service\nmetadata: { name: http, namespace: default }\nspec:\n  clusterIP: ${HTTP_VIP}\n  selector: { app: http }\n  ports:\n    - port: 80000\n`);
    const log = state.controlPlane!.log;
    await waitFor('the control plane to report the bad file', async () => fs.readFileSync(log, 'utf8').includes(`${bad}:8`), 3000);
    assert.match(fs.readFileSync(log, 'utf8'), /spec\.ports\[0\]\.port/);
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual([...new Set(await httpPods(4))].sort(), ['http-a', 'http-b']);
    fs.rmSync(bad);
  });

  it('5. control plane killed: agents keep routing; restarted: they reconnect and converge', async () => {
    await stopControlPlane(lab, 'SIGKILL');
    await waitFor('node-a to notice', async () => JSON.parse(await admin(lab, 'node-a', '/config_dump')).xds.connected === false, 5000);
    assert.deepEqual([...new Set(await httpPods(4))].sort(), ['http-a', 'http-b'], 'last good config still routes');
    relabel('http-a', 'http-off');
    await startControlPlane(lab);
    await waitFor('agents to reconnect and converge', async () => {
      for (const node of ['node-a', 'node-b']) {
        const dump = JSON.parse(await admin(lab, node, '/config_dump'));
        const http = (dump.services.clusters as { host: string; endpoints: { pod: string }[] }[]).find((c) => c.host.startsWith('http.'));
        if (!dump.xds.connected || http?.endpoints.length !== 1 || http.endpoints[0]!.pod !== 'http-b') return false;
      }
      return true;
    }, 10_000);
    assert.deepEqual(await httpPods(2), ['http-b', 'http-b']);
  });
});
