// End to end through the real kernel: lab namespaces, real eBPF redirection and steering, two node agents.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import { killAgent, startAgent } from '../../src/lab/agent-control';
import { unixRequest } from '../../src/enroll/client';
import { enrollSocket } from '../../src/lab/paths';
import { labStatus } from '../../src/lab/status';
import { admin, connections, down, execInPod, isRoot, metricSum, PUMP_MANY, podIP, SLOW_PUMP, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';
import { leftovers } from '../helpers/leftovers';

const MANIFEST = `
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default, labels: { app: client } }
spec:
  nodeName: node-a
  serviceAccountName: client
  containers: [{ name: main, command: [sleep, infinity] }]
---
apiVersion: v1
kind: Pod
metadata: { name: echo-b, namespace: default, labels: { app: echo } }
spec:
  nodeName: node-b
  serviceAccountName: echo
  containers: [{ name: main, command: [nodemesh, sample, echo, --port, "9000"] }]
---
apiVersion: v1
kind: Pod
metadata: { name: legacy-a, namespace: legacy, annotations: { nodemesh.io/enroll: "false" } }
spec:
  nodeName: node-a
  containers: [{ name: main, command: [nodemesh, sample, echo, --port, "9000"] }]
---
apiVersion: v1
kind: Pod
metadata: { name: legacy-b, namespace: legacy, annotations: { nodemesh.io/enroll: "false" } }
spec:
  nodeName: node-b
  containers: [{ name: main, command: [nodemesh, sample, echo, --port, "9000"] }]
`;

const MiB = 1024 * 1024;

describe('L4 mesh through the kernel', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('l4');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  async function pump(from: string, ip: string, bytes: number): Promise<{ ok: boolean; error?: string }> {
    const r = await execInPod(lab, from, ['nodemesh', 'sample', 'pump', '--connect', `${ip}:9000`, '--bytes', String(bytes)]);
    assert.equal(r.code, 0, `pump from ${from} to ${ip}: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  }

  const opened = async (node: string, match: Record<string, string> = {}): Promise<number> =>
    metricSum(await admin(lab, node, '/metrics'), 'istio_tcp_connections_opened_total', match);

  it('1. cross-node: 8 MiB round-trips byte-exact; node-a counts outbound with the original destination, node-b inbound', async () => {
    const echoB = podIP(state, 'echo-b');
    const clientIP = podIP(state, 'client');
    const r = await pump('client', echoB, 8 * MiB);
    assert.ok(r.ok, r.error);

    const out = await waitFor('node-a outbound record', async () =>
      (await connections(lab, 'node-a')).recent.find((c) => c.direction === 'outbound' && c.dst === `${echoB}:9000` && c.bytesUp === 8 * MiB),
    );
    assert.equal(out.bytesDown, 8 * MiB);
    assert.equal(out.error, null);
    const inb = await waitFor('node-b inbound record', async () =>
      (await connections(lab, 'node-b')).recent.find((c) => c.direction === 'inbound' && c.dst === `${echoB}:9000` && c.bytesUp === 8 * MiB),
    );
    assert.match(inb.src, new RegExp(`^${clientIP.replace(/\./g, '\\.')}:`), 'inbound source is the client pod IP');

    const a = await admin(lab, 'node-a', '/metrics');
    assert.equal(metricSum(a, 'istio_tcp_received_bytes_total', { reporter: 'source', source_workload: 'client' }), 8 * MiB);
    assert.ok(metricSum(a, 'nodemesh_redirected_connections_total', { pod: 'client' }) >= 1);
    const b = await admin(lab, 'node-b', '/metrics');
    // the lab runs the CA, so enrolled pods talk mTLS and node-b knows the source from its certificate
    assert.ok(metricSum(b, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'echo-b', source_workload: 'client', connection_security_policy: 'mutual_tls' }) >= 1, b);
    assert.equal(metricSum(b, 'istio_tcp_sent_bytes_total', { reporter: 'destination', destination_workload: 'echo-b' }), 8 * MiB);
  });

  it('2. a non-enrolled pod is untouched; connections to it from enrolled pods still go through the source outbound', async () => {
    const beforeA = await opened('node-a');
    const beforeB = await opened('node-b');
    const redirectedBefore = metricSum(await admin(lab, 'node-b', '/metrics'), 'nodemesh_redirected_connections_total');
    // legacy-b (not enrolled, node-b) -> legacy-a (not enrolled, node-a): no agent sees it
    assert.ok((await pump('legacy-b', podIP(state, 'legacy-a'), 64 * 1024)).ok);
    assert.equal(await opened('node-a'), beforeA);
    assert.equal(await opened('node-b'), beforeB);
    assert.equal(metricSum(await admin(lab, 'node-b', '/metrics'), 'nodemesh_redirected_connections_total'), redirectedBefore);

    // client (enrolled, node-a) -> legacy-b: node-a outbound counts it, node-b (legacy-b not enrolled) does not
    const legacyB = podIP(state, 'legacy-b');
    assert.ok((await pump('client', legacyB, 64 * 1024)).ok);
    await waitFor('node-a outbound to legacy-b', async () =>
      (await connections(lab, 'node-a')).recent.find((c) => c.direction === 'outbound' && c.dst === `${legacyB}:9000`),
    );
    assert.equal(await opened('node-b'), beforeB);
  });

  it('3. 200 concurrent connections through the path all complete intact', async () => {
    const r = await execInPod(lab, 'client', [process.execPath, PUMP_MANY, podIP(state, 'echo-b'), '9000', '200', String(64 * 1024)], 120_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const summary = JSON.parse(r.stdout) as { connections: number; intact: number };
    assert.deepEqual(summary, { connections: 200, intact: 200, failures: [] });
  });

  it('4. SIGKILL of node-a\'s agent: traffic fails open; a restart redirects again with one program per hook', async () => {
    const echoB = podIP(state, 'echo-b');
    await killAgent(lab, 'node-a', 'SIGKILL');
    // new connections from node-a's pods still succeed, directly
    assert.ok((await pump('client', echoB, 256 * 1024)).ok);
    // node-b still captures them inbound (its agent is alive)
    await waitFor('node-b inbound during node-a outage', async () => (await connections(lab, 'node-b')).recent.find((c) => c.dst === `${echoB}:9000` && c.bytesUp === 256 * 1024));

    await startAgent(lab, 'node-a');
    const cfg = JSON.parse(await admin(lab, 'node-a', '/config_dump'));
    assert.deepEqual(cfg.pods.map((p: { name: string }) => p.name), ['client'], 'restarted agent restored its pods');
    const adopted = cfg.datapath.programs.filter((p: { adopted: boolean }) => p.adopted).map((p: { attachType: string }) => p.attachType);
    assert.ok(adopted.length >= 3, `restart adopted pinned links: ${JSON.stringify(cfg.datapath.programs)}`);
    // one program per hook on node-a's pods cgroup
    const node = state.nodes.find((n) => n.name === 'node-a')!;
    const tree = JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', node.podsCgroup], { encoding: 'utf8' })) as { attach_type: string }[];
    const perHook = new Map<string, number>();
    for (const p of tree) perHook.set(p.attach_type, (perHook.get(p.attach_type) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(perHook), { cgroup_inet4_connect: 1, cgroup_inet6_connect: 1, cgroup_sock_ops: 1 });

    const redirectedBefore = metricSum(await admin(lab, 'node-a', '/metrics'), 'nodemesh_redirected_connections_total', { pod: 'client' });
    assert.ok((await pump('client', echoB, 256 * 1024)).ok);
    await waitFor('node-a redirects again', async () =>
      (await connections(lab, 'node-a')).recent.find((c) => c.direction === 'outbound' && c.dst === `${echoB}:9000` && c.bytesUp === 256 * 1024),
    );
    assert.ok(metricSum(await admin(lab, 'node-a', '/metrics'), 'nodemesh_redirected_connections_total', { pod: 'client' }) > redirectedBefore);
    const s = await labStatus(lab);
    assert.ok(s.nodes.every((n) => n.ready), 'all agents ready again');
  });

  it('4b. SIGTERM of node-a\'s agent: an open connection drains to completion, then programs are detached and pins removed', async () => {
    const echoB = podIP(state, 'echo-b');
    const node = state.nodes.find((n) => n.name === 'node-a')!;
    const slow = execInPod(lab, 'client', [process.execPath, SLOW_PUMP, echoB, '9000', '1500']);
    await waitFor('the slow connection to be open on node-a', async () =>
      ((await connections(lab, 'node-a')).active as { dst: { ip: string } }[]).some((c) => c.dst.ip === echoB),
    );
    await killAgent(lab, 'node-a', 'SIGTERM');
    const r = await slow;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), { ok: true, received: 128 * 1024 });
    const tree = JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', node.podsCgroup], { encoding: 'utf8' }).trim() || '[]') as unknown[];
    assert.deepEqual(tree, [], 'no program left attached after a graceful stop');
    assert.equal(fs.existsSync(path.join(node.pinRoot, 'links')), false, 'pinned links removed');
    // with no agent, traffic goes direct
    assert.ok((await pump('client', echoB, 64 * 1024)).ok);
    await startAgent(lab, 'node-a');
    assert.deepEqual(JSON.parse(await admin(lab, 'node-a', '/config_dump')).pods.map((p: { name: string }) => p.name), ['client']);
  });

  it('5. the enrollment API rejects bad requests with clear errors and applies nothing', async () => {
    const sock = enrollSocket(lab, 'node-a');
    const node = state.nodes.find((n) => n.name === 'node-a')!;
    const mapEntries = async (): Promise<number> => {
      const cfg = JSON.parse(await admin(lab, 'node-a', '/config_dump'));
      return (cfg.datapath.maps as { name: string; entries: number }[]).find((m) => m.name === 'nm_pods')!.entries;
    };
    const podsBefore = await mapEntries();
    const call = async (method: string, p: string, body?: string) => {
      const res = await unixRequest(sock, method, p, body);
      return { status: res.status, error: (JSON.parse(res.body) as { error: { code: string; message: string } }).error };
    };
    const good = {
      uid: 'e2e-bad',
      name: 'ghost',
      namespace: 'default',
      serviceAccount: 'default',
      netnsPath: '/run/netns/nm-no-such-netns',
      cgroupPath: node.podsCgroup,
      ips: ['198.19.1.250'],
    };
    let r = await call('POST', '/v1/pods', '{"uid":"x", "name": ');
    assert.equal(r.status, 400);
    assert.equal(r.error.code, 'NM_ENROLL_MALFORMED_JSON');
    r = await call('POST', '/v1/pods', JSON.stringify(good));
    assert.equal(r.status, 400);
    assert.equal(r.error.code, 'NM_ENROLL_NO_NETNS');
    assert.match(r.error.message, /nm-no-such-netns does not exist/);
    r = await call('DELETE', '/v1/pods/no-such-uid');
    assert.equal(r.status, 404);
    assert.equal(r.error.code, 'NM_ENROLL_UNKNOWN_POD');
    const client = state.pods.find((p) => p.name === 'client')!;
    r = await call('POST', '/v1/pods', JSON.stringify({ ...good, uid: client.uid, netnsPath: client.netnsPath }));
    assert.equal(r.status, 409);
    assert.equal(r.error.code, 'NM_ENROLL_DUPLICATE');
    assert.equal(await mapEntries(), podsBefore, 'no kernel state from rejected requests');
    const pods = JSON.parse((await unixRequest(sock, 'GET', '/v1/pods')).body).pods as { name: string }[];
    assert.deepEqual(pods.map((p) => p.name), ['client']);
  });

  it('6. lab down leaves nothing of the lab in the kernel', async () => {
    const after = await import('../../src/lab').then((m) => m.readState(lab));
    const programIds: number[] = [];
    for (const n of after.nodes) {
      const cfg = JSON.parse(await admin(lab, n.name, '/config_dump'));
      for (const p of cfg.datapath.programs as { programId: number }[]) programIds.push(p.programId);
    }
    assert.ok(programIds.length >= 6, 'agents reported their attached programs');
    const pids = after.pods.flatMap((p) => p.containers.map((c) => c.proc?.pid ?? 0)).filter((x) => x > 0);
    await down(lab);
    assert.deepEqual(await leftovers(lab, after.nodes, programIds, pids), []);
  });
});
