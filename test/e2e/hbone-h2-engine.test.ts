// The incident switch end to end: both agents run HBONE on Node's http2 (`--hbone-h2 node`) and mesh traffic
// still crosses nodes over mTLS.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { admin, down, execInPod, isRoot, metricSum, podIP, podYaml, uniqueLabName, upFromYaml } from '../helpers/lab';

const MARKER_PUMP = path.resolve(__dirname, '../helpers/marker-pump.js');
const MANIFEST = [
  podYaml({ name: 'client', node: 'node-a', serviceAccount: 'client', app: 'client', command: ['sleep', 'infinity'] }),
  podYaml({ name: 'echo-b', node: 'node-b', serviceAccount: 'echo', app: 'echo', command: ['nodemesh', 'sample', 'echo', '--port', '9000'] }),
].join('\n');

describe("HBONE on Node's http2 (--hbone-h2 node) in the lab", { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('h2n');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST, { agentArgs: ['--hbone-h2', 'node'] });
  });
  after(async () => {
    await down(lab);
  });

  it('carries a cross-node connection over mTLS, counted as such, on the engine asked for', async () => {
    const r = await execInPod(lab, 'client', [process.execPath, MARKER_PUMP, podIP(state, 'echo-b'), '9000', 'h2-engine-node', '256']);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { ok: boolean; error?: string };
    assert.ok(result.ok, r.stdout + r.stderr);
    const mA = await admin(lab, 'node-a', '/metrics');
    assert.equal(metricSum(mA, 'nodemesh_hbone_client_h2_engine', { engine: 'node' }), 1, 'node-a runs HBONE on node:http2');
    assert.ok(metricSum(mA, 'nodemesh_hbone_client_sessions_opened_total') >= 1);
    const mB = await admin(lab, 'node-b', '/metrics');
    assert.equal(metricSum(mB, 'nodemesh_hbone_client_h2_engine', { engine: 'node' }), 1);
    assert.ok(
      metricSum(mB, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'echo-b', connection_security_policy: 'mutual_tls' }) >= 1,
      mB,
    );
    assert.ok(metricSum(mB, 'nodemesh_hbone_server_sessions_accepted_total', { pod: 'echo-b', namespace: 'default' }) >= 1);
  });
});
