// The application sees its real client: the destination agent connects to it from the client's address (a
// transparent socket in the pod netns), over HBONE from the same node and from another, and for plaintext
// from outside the mesh (15006). The agent's own connections are never steered back to it.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { admin, down, execInPod, isRoot, metricSum, podIP, podYaml, uniqueLabName, upFromYaml } from '../helpers/lab';

const SLEEP = ['sleep', 'infinity'];
const MANIFEST = [
  podYaml({ name: 'web', node: 'node-b', serviceAccount: 'web', app: 'web', command: ['nodemesh', 'sample', 'http', '--port', '8080'] }),
  podYaml({ name: 'mesh-a', node: 'node-a', serviceAccount: 'client', app: 'client', command: SLEEP }),
  podYaml({ name: 'mesh-b', node: 'node-b', serviceAccount: 'client', app: 'client', command: SLEEP }),
  podYaml({ name: 'plain-a', node: 'node-a', serviceAccount: 'legacy', app: 'legacy', command: SLEEP, annotations: 'nodemesh.io/enroll: "false"' }),
  podYaml({ name: 'plain-b', node: 'node-b', serviceAccount: 'legacy', app: 'legacy', command: SLEEP, annotations: 'nodemesh.io/enroll: "false"' }),
].join('\n');

describe("the application sees the client's address", { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('ca');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  /** What the sample server reports as its peer, for `n` requests on new connections from `from`. */
  async function peers(from: string, n = 3): Promise<string[]> {
    const r = await execInPod(lab, from, ['nodemesh', 'sample', 'client', '--url', `http://${podIP(state, 'web')}:8080/`, '--count', String(n), '--new-connections']);
    assert.equal(r.code, 0, `${from}: ${r.stdout}${r.stderr}`);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { body: { peer: { address: string } } }).body.peer.address);
  }

  for (const [from, path] of [
    ['mesh-a', 'HBONE from another node'],
    ['mesh-b', 'HBONE from the same node'],
    ['plain-a', 'plaintext from another node (15006)'],
    ['plain-b', 'plaintext from the same node (15006)'],
  ] as const) {
    it(`${path}: the server reports ${from}'s own IP`, async () => {
      assert.deepEqual(await peers(from), Array(3).fill(podIP(state, from)));
    });
  }

  it('the paths were the ones named (mTLS for mesh clients, plaintext for the others), none preserved by falling back, none looped', async () => {
    const m = await admin(lab, 'node-b', '/metrics');
    const opened = (labels: Record<string, string>): number => metricSum(m, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'web', ...labels });
    assert.ok(opened({ connection_security_policy: 'mutual_tls', source_workload: 'mesh-a' }) >= 3, m);
    assert.ok(opened({ connection_security_policy: 'mutual_tls', source_workload: 'mesh-b' }) >= 3, m);
    assert.ok(opened({ connection_security_policy: 'none' }) >= 6, m);
    assert.equal(metricSum(m, 'nodemesh_proxy_errors_total', { reason: 'source_not_preserved' }), 0);
    assert.equal(metricSum(m, 'nodemesh_proxy_errors_total', { reason: 'loop' }), 0);
    const dump = JSON.parse(await admin(lab, 'node-b', '/config_dump')) as { datapath: { stats: Record<string, string>; maps: { name: string; entries: number }[] } };
    assert.ok(Number(dump.datapath.stats.steer_own_flow) >= 12, `sk_lookup let the agent's own connections through: ${JSON.stringify(dump.datapath.stats)}`);
    assert.equal(dump.datapath.maps.find((x) => x.name === 'nm_own_flows')?.entries, 0, 'no flow stays registered once connected');
  });
});
