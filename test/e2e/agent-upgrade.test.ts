// Agent upgrades under load (the shortened version of bench/handover.js that CI runs): long-lived connections
// through HBONE, a new connection every 10 ms and HTTP keep-alive requests to a STRICT pod, a capture on both
// node uplinks, and three upgrades of each node's agent. Nothing may break, fail or cross the wire in clear;
// the kernel holds one agent's state afterwards. Then the same with the control plane down, a restart included.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readState, upgradeAgent, type LabState } from '../../src/lab';
import { killAgent, startAgent } from '../../src/lab/agent-control';
import { startControlPlane, stopControlPlane } from '../../src/lab/controlplane';
import { IF, netnsPath } from '../../src/lab/paths';
import { procAlive } from '../../src/lab/state';
import { admin, down, execInPod, isRoot, metricSum, podIP, podYaml, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';
import { Capture, type TcpSegment } from '../helpers/pcap';

const LOAD = path.resolve(__dirname, '../helpers/handover-load.js');
const WEB_VIP = '198.18.128.60';
const MANIFEST = [
  podYaml({ name: 'client', node: 'node-a', serviceAccount: 'client', app: 'client', command: ['sleep', 'infinity'] }),
  podYaml({ name: 'echo', node: 'node-b', serviceAccount: 'echo', app: 'echo', command: ['nodemesh', 'sample', 'echo', '--port', '9000'] }),
  podYaml({ name: 'web', node: 'node-b', serviceAccount: 'web', app: 'web', command: ['nodemesh', 'sample', 'http', '--port', '8080'] }),
  `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: default }
spec: { selector: { matchLabels: { app: web } }, mtls: { mode: STRICT } }
`,
  // The keep-alive clients call this HTTP Service: their requests take the L7 path (parsed, routed per request).
  `---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  clusterIP: ${WEB_VIP}
  selector: { app: web }
  ports: [{ name: http, port: 8080, targetPort: 8080, appProtocol: http }]
`,
].join('\n');

interface LoadResult {
  long: { ok: number; failed: number; opened: number; lines: number; errors: string[] };
  connects: { ok: number; failed: number; errors: string[] };
  keepalive: { ok: number; failed: number; errors: string[] };
}

/** Listening sockets in a pod's netns, as "addr:port" (one line per socket). */
function listeners(netns: string): string[] {
  const out = execFileSync('nsenter', [`--net=${netnsPath(netns)}`, 'ss', '-Hltn'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/)[3]!)
    .filter((a) => /:1500[168]$/.test(a))
    .sort();
}

describe('agent upgrades under load', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('up');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-upgrade-'));
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('three upgrades of each agent: 0 broken connections, 0 failed connects or requests, 0 plaintext between mesh pods', async () => {
    const caps = await Promise.all(state.nodes.map((n) => Capture.start(netnsPath(n.netns), IF.nodeUplink, path.join(tmp, `${n.name}.pcap`))));
    const stop = path.join(tmp, 'stop');
    const echo = podIP(state, 'echo');
    const web = podIP(state, 'web');
    const load = execInPod(
      lab,
      'client',
      [process.execPath, LOAD, '--long', `${echo}:9000`, '--long-count', '10', '--connect', `${web}:8080`, '--connect-every-ms', '10', '--keepalive', `${WEB_VIP}:8080`, '--keepalive-count', '2', '--stop-file', stop, '--max-seconds', '180'],
      200_000,
    );
    const pids: number[] = [];
    let segs: TcpSegment[] = [];
    let r: LoadResult;
    try {
      await new Promise((res) => setTimeout(res, 1500));
      for (let round = 0; round < 3; round++) {
        for (const node of ['node-a', 'node-b']) {
          const u = await upgradeAgent(lab, node);
          assert.notEqual(u.previous, null, 'an agent was running and handed over');
          pids.push(u.pid, u.previous!);
          // The old agent stopped accepting at once: each pod has one set of listeners, the new agent's.
          for (const p of readState(lab).pods.filter((x) => x.node === node)) {
            const l = listeners(p.netns);
            assert.equal(new Set(l).size, l.length, `one listener per address and port in ${p.name}: ${l.join(' ')}`);
          }
          await new Promise((res) => setTimeout(res, 700));
        }
      }
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      fs.writeFileSync(stop, '');
      const out = await load;
      segs = (await Promise.all(caps.map((c) => c.stop()))).flat();
      r = JSON.parse(out.stdout.trim().split('\n').at(-1) ?? '{}') as LoadResult;
      assert.equal(out.code, 0, out.stderr);
    }
    assert.equal(r.long.opened, 10);
    assert.deepEqual({ failed: r.long.failed, errors: r.long.errors }, { failed: 0, errors: [] }, 'no long-lived connection broke');
    assert.equal(r.long.ok, 10);
    assert.deepEqual({ failed: r.connects.failed, errors: r.connects.errors }, { failed: 0, errors: [] }, 'no new connection failed');
    assert.deepEqual({ failed: r.keepalive.failed, errors: r.keepalive.errors }, { failed: 0, errors: [] }, 'no keep-alive request failed');
    assert.ok(r.connects.ok > 500 && r.keepalive.ok > 100 && r.long.lines > 1000, JSON.stringify(r));
    // the last agents parsed the keep-alive requests one by one (L7), over mTLS
    const served = metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_service: 'web.default.svc.cluster.local', connection_security_policy: 'mutual_tls' });
    assert.ok(served > 0, `node-b's agent counted the keep-alive requests per request (${served})`);

    // Every byte between the two mesh pods' nodes went to or came from 15008: nothing in clear.
    const podIps = new Set(state.pods.map((p) => p.ip));
    const between = segs.filter((s) => podIps.has(s.src) && podIps.has(s.dst));
    assert.ok(between.length > 1000, `the capture saw the traffic (${between.length} segments)`);
    const clear = between.filter((s) => s.srcPort !== 15008 && s.dstPort !== 15008);
    assert.deepEqual(clear.slice(0, 5).map((s) => `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}`), [], 'no segment between mesh pods outside HBONE');

    // The agents that handed over drain their (now ended) connections and exit; what stays in the kernel is one
    // agent's: one nm_pods entry per pod, one steering entry per pod IP, one listener set per pod.
    const old = readState(lab).nodes.flatMap((n) => n.draining ?? []);
    await waitFor('the agents that handed over to exit', async () => old.every((ref) => !procAlive(ref)), 20_000);
    for (const node of state.nodes) {
      const dump = JSON.parse(await admin(lab, node.name, '/config_dump')) as { agent: { role: string }; datapath: { maps: { name: string; entries: number }[] } };
      assert.equal(dump.agent.role, 'active');
      const pods = state.pods.filter((p) => p.node === node.name).length;
      const entries = (name: string): number => dump.datapath.maps.find((m) => m.name === name)!.entries;
      assert.equal(entries('nm_pods'), pods, `nm_pods on ${node.name}`);
      assert.equal(entries('nm_steer'), pods, `nm_steer on ${node.name}`);
    }
    const one = ['0.0.0.0:15006', '0.0.0.0:15008', '127.0.0.1:15001', '[::1]:15001', '[::]:15006', '[::]:15008'].sort();
    for (const p of state.pods) assert.deepEqual(listeners(p.netns), one, `${p.name} listeners`);
  });

  it('with the control plane down, an upgrade and a restart serve with the saved config and certificates: nothing fails, nothing in clear', async () => {
    // The restart below presents saved certificates: both agents must hold theirs before the CA goes away.
    for (const node of state.nodes) {
      await waitFor(`${node.name}'s certificates issued (and saved)`, async () => {
        const d = JSON.parse(await admin(lab, node.name, '/config_dump')) as { mesh: { identities: { state: string }[] } };
        return d.mesh.identities.length > 0 && d.mesh.identities.every((i) => i.state === 'valid');
      });
    }
    await stopControlPlane(lab);
    const stop = path.join(tmp, 'stop-cp');
    const caps = await Promise.all(state.nodes.map((n) => Capture.start(netnsPath(n.netns), IF.nodeUplink, path.join(tmp, `cp-${n.name}.pcap`))));
    const load = execInPod(lab, 'client', [process.execPath, LOAD, '--connect', `${podIP(state, 'web')}:8080`, '--connect-every-ms', '10', '--stop-file', stop, '--max-seconds', '120'], 150_000);
    let r: LoadResult;
    let segs: TcpSegment[];
    // when each step began, for a failure's message: a failed connect's time says which step it fell in
    const steps: string[] = [];
    const step = (what: string): void => void steps.push(`${new Date().toISOString()} ${what}`);
    try {
      await new Promise((res) => setTimeout(res, 1000));
      step('upgrade node-b');
      await upgradeAgent(lab, 'node-b');
      step('upgrade node-a');
      await upgradeAgent(lab, 'node-a');
      // a restart (no successor) of the server side: 15008 accepts through the drain, the client retries the gap
      step('SIGTERM node-b');
      await killAgent(lab, 'node-b', 'SIGTERM', 30_000, { onlyActive: true });
      step('start node-b');
      await startAgent(lab, 'node-b');
      step('node-b started');
      const dump = JSON.parse(await admin(lab, 'node-b', '/config_dump')) as { xds: { connected: boolean; configSource: string }; mesh: { identities: { state: string }[] } };
      assert.deepEqual([dump.xds.connected, dump.xds.configSource], [false, 'saved'], 'ready without the control plane, from the saved config');
      assert.ok(dump.mesh.identities.every((i) => i.state === 'valid'), `saved certificates in use: ${JSON.stringify(dump.mesh.identities)}`);
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      fs.writeFileSync(stop, '');
      const out = await load;
      segs = (await Promise.all(caps.map((c) => c.stop()))).flat();
      r = JSON.parse(out.stdout.trim().split('\n').at(-1) ?? '{}') as LoadResult;
      await startControlPlane(lab);
    }
    assert.deepEqual({ failed: r.connects.failed, errors: r.connects.errors }, { failed: 0, errors: [] }, `no new connection failed; steps:\n${steps.join('\n')}`);
    assert.ok(r.connects.ok > 300, JSON.stringify(r));
    const podIps = new Set(state.pods.map((p) => p.ip));
    const clear = segs.filter((s) => podIps.has(s.src) && podIps.has(s.dst) && s.srcPort !== 15008 && s.dstPort !== 15008);
    assert.equal(clear.length, 0, 'mesh traffic stayed on HBONE');
  });
});
