// mTLS through the lab: HBONE between nodes (seen on the wire), PeerAuthentication, AuthorizationPolicy,
// bad client certificates, certificate rotation under load, the CA's node authorization, and HBONE keepalive
// against a peer agent that stops answering.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, createCsr } from '../../src/identity/pki';
import { CaClient } from '../../src/identity/ca-client';
import type { LabState } from '../../src/lab';
import { configDir, nodeTokenFile } from '../../src/lab/controlplane';
import { IF, labDir, netnsPath } from '../../src/lab/paths';
import { admin, connections, down, execInPod, isRoot, metricSum, podIP, podYaml, SLOW_PUMP, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';
import { Capture, type TcpSegment } from '../helpers/pcap';
import { createTestCa, testCaFromRoot } from '../helpers/test-ca';

const MARKER_PUMP = path.resolve(__dirname, '../helpers/marker-pump.js');
const HBONE_PROBE = path.resolve(__dirname, '../helpers/hbone-probe.js');
const CERT_VALIDITY_S = 6;
/** Short HBONE keepalive (PING after 1 s of silence, ends 1 s later): the long, paused transfer of 5 must survive it. */
const KEEPALIVE_MS = 1000;
const SA = (sa: string): string => `spiffe://cluster.local/ns/default/sa/${sa}`;

const pod = (name: string, node: string, sa: string, app: string, command: string[], annotations = ''): string =>
  podYaml({ name, node, serviceAccount: sa, app, command, annotations });

const ECHO = ['nodemesh', 'sample', 'echo', '--port', '9000'];
const SLEEP = ['sleep', 'infinity'];
const MANIFEST = [
  pod('client', 'node-a', 'client', 'client', SLEEP),
  pod('other', 'node-a', 'other', 'other', SLEEP),
  pod('legacy-a', 'node-a', 'legacy', 'legacy', SLEEP, 'nodemesh.io/enroll: "false"'),
  pod('echo-b', 'node-b', 'echo', 'echo', ECHO),
  pod('strict-b', 'node-b', 'strict', 'strict', ECHO),
  pod('guarded-b', 'node-b', 'guarded', 'guarded', ECHO),
  `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: default }
spec: { selector: { matchLabels: { app: strict } }, mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-client, namespace: default }
spec:
  selector: { matchLabels: { app: guarded } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }] }]
`,
].join('\n');

describe('mTLS, identity and policy in the lab', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('mt');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-mtls-'));
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST, { agentArgs: ['--cert-validity', String(CERT_VALIDITY_S), '--hbone-keepalive-ms', String(KEEPALIVE_MS)] });
  });
  after(async () => {
    await down(lab);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function markerPump(from: string, to: string, marker: string): Promise<{ ok: boolean; error?: string }> {
    const r = await execInPod(lab, from, [process.execPath, MARKER_PUMP, podIP(state, to), '9000', marker, '256']);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  }
  const metricsB = (): Promise<string> => admin(lab, 'node-b', '/metrics');

  it('1. cross-node traffic between enrolled pods runs over HBONE: the wire shows a TLS handshake on 15008, never the payload', async () => {
    // node-a's uplink into the fabric: everything node-a sends to node-b crosses it
    const nodeA = state.nodes.find((n) => n.name === 'node-a')!;
    const cap = await Capture.start(netnsPath(nodeA.netns), IF.nodeUplink, path.join(tmp, 'wire.pcap'));
    const marker = 'NODEMESH-WIRE-MARKER-7f3a9c';
    let r: { ok: boolean; error?: string } = { ok: false };
    let segs: TcpSegment[] = [];
    try {
      r = await markerPump('client', 'echo-b', marker);
    } finally {
      segs = await cap.stop();
    }
    assert.ok(r.ok, JSON.stringify(r));
    const echoB = podIP(state, 'echo-b');
    const toHbone = segs.filter((s) => s.dst === echoB && s.dstPort === 15008 && s.payload.length > 0);
    const flows = [...new Set(segs.map((x) => `${x.src}:${x.srcPort}>${x.dst}:${x.dstPort}`))];
    assert.ok(toHbone.length > 0, `traffic to the destination went to its 15008; flows seen: ${flows.join(' ')}; tcpdump: ${cap.log}`);
    assert.ok(toHbone.some((s) => s.payload[0] === 0x16 && s.payload[1] === 0x03), 'a TLS handshake record went to 15008');
    assert.equal(segs.filter((s) => s.dstPort === 9000 || s.srcPort === 9000).length, 0, 'nothing crossed the wire on the app port');
    assert.ok(!segs.some((s) => s.payload.includes(marker)), 'the payload never crossed the wire in clear');
    const m = await metricsB();
    assert.ok(metricSum(m, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'echo-b', source_principal: SA('client'), connection_security_policy: 'mutual_tls' }) >= 1, m);
    assert.ok(metricSum(m, 'nodemesh_hbone_server_sessions_accepted_total', { pod: 'echo-b', namespace: 'default' }) >= 1, 'node-b counts the HBONE session on echo-b');
    const mA = await admin(lab, 'node-a', '/metrics');
    assert.ok(metricSum(mA, 'nodemesh_hbone_client_sessions_opened_total') >= 1, 'node-a counts the session it dialled');
    assert.equal(metricSum(mA, 'nodemesh_hbone_client_dial_failures_total'), 0);
  });

  it('2. STRICT refuses plaintext from a pod outside the mesh; PERMISSIVE lets it through, counted as none', async () => {
    const refused = await markerPump('legacy-a', 'strict-b', 'plaintext-to-strict');
    assert.equal(refused.ok, false, 'plaintext to a STRICT workload must fail');
    await waitFor('the STRICT refusal to be counted', async () =>
      metricSum(await metricsB(), 'istio_tcp_connections_opened_total', { destination_workload: 'strict-b', connection_security_policy: 'none', response_flags: 'DENY' }) >= 1,
    );
    assert.ok((await markerPump('client', 'strict-b', 'mtls-to-strict')).ok, 'mesh clients reach STRICT workloads over mTLS');
    assert.ok((await markerPump('legacy-a', 'echo-b', 'plaintext-to-permissive')).ok);
    const m = await metricsB();
    assert.ok(metricSum(m, 'istio_tcp_connections_opened_total', { destination_workload: 'echo-b', connection_security_policy: 'none', response_flags: '-' }) >= 1);
  });

  it('3. AuthorizationPolicy: ALLOW only sa/client admits it and refuses another identity (DENY); a new DENY policy closes an open connection', async () => {
    assert.ok((await markerPump('client', 'guarded-b', 'allowed')).ok);
    assert.equal((await markerPump('other', 'guarded-b', 'not-allowed')).ok, false);
    await waitFor('the refusal to be counted', async () =>
      metricSum(await metricsB(), 'istio_tcp_connections_opened_total', { destination_workload: 'guarded-b', source_principal: SA('other'), response_flags: 'DENY' }) >= 1,
    );
    const slow = execInPod(lab, 'client', [process.execPath, SLOW_PUMP, podIP(state, 'guarded-b'), '9000', '8000']);
    await waitFor('the open connection on node-b', async () =>
      ((await connections(lab, 'node-b')).active as { dst: { ip: string } }[]).some((c) => c.dst.ip === podIP(state, 'guarded-b')),
    );
    fs.writeFileSync(
      path.join(configDir(lab), 'deny-client.yaml'),
      `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-client, namespace: default }\nspec:\n  selector: { matchLabels: { app: guarded } }\n  action: DENY\n  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }] }]\n`,
    );
    const t0 = Date.now();
    const r = await slow;
    assert.notEqual(r.code, 0, `the open connection must be closed by the DENY policy: ${r.stdout}`);
    assert.ok(Date.now() - t0 < 6000, 'closed well before the transfer would have finished');
    await waitFor('the closure to be recorded', async () =>
      (await connections(lab, 'node-b')).recent.some((c) => c.dst.startsWith(podIP(state, 'guarded-b')) && (c.error ?? '').includes('closed by policy')),
    );
    fs.rmSync(path.join(configDir(lab), 'deny-client.yaml'));
  });

  it('4. a client certificate from another CA, an expired one, or none is refused on 15008', async () => {
    const meshCa = testCaFromRoot(fs.readFileSync(path.join(labDir(lab), 'ca', 'root-cert.pem'), 'utf8'), fs.readFileSync(path.join(labDir(lab), 'ca', 'root-key.pem'), 'utf8'));
    const foreign = createTestCa({ name: 'someone else' });
    const target = podIP(state, 'echo-b');
    const probe = async (name: string, creds: { keyPem?: string; chainPem?: string[] }): Promise<{ ok: boolean; status?: number; error?: string }> => {
      const file = path.join(tmp, `${name}.json`);
      fs.writeFileSync(file, JSON.stringify({ address: target, port: 15008, authority: `${target}:9000`, rootsPem: [meshCa.rootPem], ...creds }));
      const r = await execInPod(lab, 'legacy-a', [process.execPath, HBONE_PROBE, file]);
      return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    };
    const valid = meshCa.issue({ spiffeId: SA('client') });
    assert.deepEqual(await probe('valid', { keyPem: valid.keyPem, chainPem: valid.chainPem }), { ok: true, status: 200 }, 'control: a mesh certificate is accepted');
    const f = foreign.issue({ spiffeId: SA('client') });
    assert.equal((await probe('foreign', { keyPem: f.keyPem, chainPem: f.chainPem })).ok, false);
    const x = meshCa.issueExpired(SA('client'));
    assert.equal((await probe('expired', { keyPem: x.keyPem, chainPem: x.chainPem })).ok, false);
    assert.equal((await probe('none', {})).ok, false);
    const m = await metricsB();
    const refused = metricSum(m, 'nodemesh_hbone_server_clients_refused_total', { pod: 'echo-b' }) + metricSum(m, 'nodemesh_hbone_server_handshake_failures_total', { pod: 'echo-b' });
    assert.ok(refused >= 3, `the three refusals are counted on echo-b (clients refused + handshake failures = ${refused})`);
  });

  it('5. certificates rotate several times during a long transfer that completes intact; new connections use the new certificate', async () => {
    const serials = new Set<string>();
    const clientSerial = async (): Promise<string | null> => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump'));
      return (dump.mesh.identities as { spiffeId: string; serial: string | null }[]).find((i) => i.spiffeId === SA('client'))?.serial ?? null;
    };
    const transfer = execInPod(lab, 'client', [process.execPath, SLOW_PUMP, podIP(state, 'echo-b'), '9000', String(CERT_VALIDITY_S * 2000)]);
    let finished = false;
    void transfer.finally(() => (finished = true));
    while (!finished) {
      const s = await clientSerial();
      if (s) serials.add(s);
      await new Promise((r) => setTimeout(r, 250));
    }
    const r = await transfer;
    assert.equal(r.code, 0, `long transfer broke: ${r.stdout}${r.stderr}`);
    assert.ok(serials.size >= 3, `expected at least two rotations during the transfer, saw serials ${[...serials].join(', ')}`);
    // A new connection right after a rotation rides a session keyed by the certificate current at that moment.
    const before = await clientSerial();
    assert.ok((await markerPump('client', 'echo-b', 'after-rotation')).ok);
    const after = await clientSerial();
    const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump'));
    const keys = (dump.mesh.hboneClient.perSession as { key: string }[]).map((s) => s.key);
    assert.ok(
      keys.some((k) => k.includes(`|${SA('client')}|${before}|`) || k.includes(`|${SA('client')}|${after}|`)),
      `a session with the current certificate (${before} / ${after}): ${keys.join(' ')}`,
    );
    assert.ok(!serials.has(before!) || before === [...serials].at(-1), 'the current certificate is the newest one');
  });

  it('6. the CA refuses a CSR for an identity that is not scheduled on the requesting node', async () => {
    const nodeB = state.nodes.find((n) => n.name === 'node-b')!;
    const ca = new CaClient({ address: `unix://${state.controlPlane!.xdsSocket}`, tokenFile: nodeTokenFile(nodeB.stateDir) });
    try {
      const keys = await generateKeyPair();
      await assert.rejects(ca.createCertificate(createCsr(keys, SA('client')), 60), (e: Error & { code?: string }) => {
        assert.match(e.message, /node node-b asked for spiffe:\/\/cluster\.local\/ns\/default\/sa\/client but no pod with that service account is scheduled on node-b/);
        return true;
      });
      // and the same node may have what is scheduled on it
      const chain = await ca.createCertificate(createCsr(keys, SA('echo')), 60);
      assert.ok(chain.length >= 2);
    } finally {
      ca.close();
    }
  });

  it('7. a peer agent that stops answering (SIGSTOP): the tunnel through it ends within the keepalive, and new connections work once it is back', async () => {
    const agentB = state.nodes.find((n) => n.name === 'node-b')!.agent!.pid;
    const silentBefore = async (): Promise<number> => JSON.parse(await admin(lab, 'node-a', '/config_dump')).mesh.hboneClient.silentPeers as number;
    const before = await silentBefore();
    // One tunnel that carries 64 KiB, then waits 15 s before sending more: it is open and quiet when node-b freezes.
    const transfer = execInPod(lab, 'client', [process.execPath, SLOW_PUMP, podIP(state, 'echo-b'), '9000', '15000']);
    await new Promise((r) => setTimeout(r, 1_500));
    const stoppedAt = Date.now();
    process.kill(agentB, 'SIGSTOP');
    // Whatever happens, node-b runs again: without a working keepalive the transfer then completes and the test fails.
    const resume = setTimeout(() => process.kill(agentB, 'SIGCONT'), 10_000);
    let r: Awaited<typeof transfer>;
    try {
      r = await transfer;
    } finally {
      clearTimeout(resume);
      process.kill(agentB, 'SIGCONT');
    }
    const took = Date.now() - stoppedAt;
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { ok?: boolean; error?: string };
    assert.equal(last.ok, false, `the tunnel through a frozen peer must end, not hang: ${r.stdout}${r.stderr}`);
    assert.ok(took < 8_000, `ended ${took} ms after the peer froze (keepalive ${KEEPALIVE_MS} + ${KEEPALIVE_MS} ms, plus up to one check interval)`);
    assert.ok((await silentBefore()) > before, 'node-a counted the silent peer');
    assert.ok(metricSum(await admin(lab, 'node-a', '/metrics'), 'nodemesh_hbone_client_silent_peers_total') >= 1, 'and exposes it as a metric');
    // The peer has just woken from a 10 s freeze with its backlog to work through: new connections must
    // work again, within a few seconds of it running (one try right away was flaky on a loaded machine).
    let resumed = false;
    for (let i = 0; i < 10 && !resumed; i++) {
      resumed = (await markerPump('client', 'echo-b', `after-the-peer-resumed-${i}`)).ok;
      if (!resumed) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(resumed, 'a new connection works once the peer answers again');
  });
});
