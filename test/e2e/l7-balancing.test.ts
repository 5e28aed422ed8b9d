// Per-request load balancing in the lab, across nodes over mTLS: DestinationRule loadBalancer policies
// (ROUND_ROBIN, LEAST_REQUEST, PEAK_EWMA against one slow endpoint; consistentHash on a header, and how few
// keys move when an endpoint joins; locality), and gRPC: retries on UNAVAILABLE to another endpoint, calls
// balanced per request over one HTTP/2 connection.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { admin, down, execInPod, isRoot, metricSum, podYaml, setPodLabel, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const FLAKY_HTTP = path.resolve(__dirname, '../helpers/flaky-http.js');
const UNAVAILABLE_GRPC = path.resolve(__dirname, '../helpers/unavailable-grpc.js');
const HASH_KEYS = path.resolve(__dirname, '../helpers/hash-keys.js');
const VIP = { rr: '198.18.128.60', lr: '198.18.128.61', ewma: '198.18.128.62', hash: '198.18.128.63', near: '198.18.128.64', grpc: '198.18.128.65' };

const pod = (name: string, node: string, app: string, command: string[]): string => podYaml({ name, node, serviceAccount: app, app, command });
const sample = (name: string): string[] => ['nodemesh', 'sample', 'http', '--port', '8080', '--name', name];
const svc = (name: string, vip: string, app: string, protocol = 'http', port = 80, target = 8080): string => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { clusterIP: ${vip}, selector: { app: ${app} }, ports: [{ name: ${protocol}, port: ${port}, targetPort: ${target}, appProtocol: ${protocol} }] }
---`;
const rule = (host: string, lb: string): string => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host}, namespace: default }
spec: { host: ${host}, trafficPolicy: { loadBalancer: ${lb} } }
---`;

const MANIFEST = [
  pod('client', 'node-a', 'client', ['sleep', 'infinity']),
  pod('lb-1', 'node-b', 'lb', sample('lb')),
  pod('lb-2', 'node-b', 'lb', sample('lb')),
  // Slowed by 50 ms: no flag file, never failing.
  pod('lb-3', 'node-b', 'lb', [process.execPath, FLAKY_HTTP, '8080', '/nonexistent/never', '50']),
  pod('h-1', 'node-b', 'hash', sample('hash')),
  pod('h-2', 'node-b', 'hash', sample('hash')),
  pod('h-3', 'node-b', 'hash', sample('hash')),
  pod('h-4', 'node-b', 'spare', sample('hash')),
  pod('near-a', 'node-a', 'near', sample('near')),
  pod('near-b', 'node-b', 'near', sample('near')),
  pod('grpc-1', 'node-b', 'grpc', ['nodemesh', 'sample', 'grpc', '--port', '7070']),
  pod('grpc-2', 'node-b', 'grpc', ['nodemesh', 'sample', 'grpc', '--port', '7070']),
  pod('grpc-3', 'node-b', 'grpc', [process.execPath, UNAVAILABLE_GRPC, '7070']),
  svc('lb-rr', VIP.rr, 'lb'),
  svc('lb-lr', VIP.lr, 'lb'),
  svc('lb-ewma', VIP.ewma, 'lb'),
  svc('hash', VIP.hash, 'hash'),
  svc('near', VIP.near, 'near'),
  svc('grpc', VIP.grpc, 'grpc', 'grpc', 7070, 7070),
  rule('lb-rr', '{ simple: ROUND_ROBIN }'),
  rule('lb-lr', '{ simple: LEAST_REQUEST }'),
  rule('lb-ewma', '{ simple: PEAK_EWMA }'),
  rule('hash', '{ consistentHash: { httpHeaderName: x-user, ringHash: { minimumRingSize: 4096 } } }'),
  rule('near', '{ simple: ROUND_ROBIN, localityLbSetting: { enabled: true } }'),
].join('\n');

interface Summary {
  total: number;
  ok: number;
  byStatus: Record<string, number>;
  byCode?: Record<string, number>;
  byPod: Record<string, number>;
}

describe('L7 load balancing and gRPC across nodes', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)' }, () => {
  const lab = uniqueLabName('lb');

  before(async () => {
    await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  async function client(url: string, args: string[] = []): Promise<Summary> {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url, '--summary', '-q', ...args]);
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { summary: Summary }).summary;
  }

  async function keys(count: number): Promise<Record<string, string>> {
    const r = await execInPod(lab, 'client', [process.execPath, HASH_KEYS, `http://${VIP.hash}/`, 'x-user', String(count)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout.trim()) as Record<string, string>;
  }

  it('one endpoint slowed by 50 ms: LEAST_REQUEST and PEAK_EWMA send it measurably less than ROUND_ROBIN', async () => {
    const share: Record<string, number> = {};
    for (const [name, vip] of [['ROUND_ROBIN', VIP.rr], ['LEAST_REQUEST', VIP.lr], ['PEAK_EWMA', VIP.ewma]] as const) {
      const s = await client(`http://${vip}/`, ['--count', '300', '--concurrency', '6']);
      assert.equal(s.ok, 300, JSON.stringify(s));
      share[name] = (s.byPod['lb-3'] ?? 0) / s.total;
    }
    console.log(`share of the slow endpoint: ${Object.entries(share).map(([k, v]) => `${k} ${(v * 100).toFixed(1)} %`).join(', ')}`);
    assert.ok(share.ROUND_ROBIN! > 0.3 && share.ROUND_ROBIN! < 0.37, `round robin gives each of 3 a third: ${share.ROUND_ROBIN}`);
    assert.ok(share.LEAST_REQUEST! < share.ROUND_ROBIN! * 0.75, `least request: ${share.LEAST_REQUEST}`);
    assert.ok(share.PEAK_EWMA! < share.ROUND_ROBIN! * 0.75, `peak EWMA: ${share.PEAK_EWMA}`);
  });

  it('consistent hash on x-user: a key stays on one endpoint; an endpoint joining moves only keys onto it, about 1/N', async () => {
    const sticky = await client(`http://${VIP.hash}/`, ['--count', '200', '--concurrency', '4', '-H', 'x-user: alice']);
    assert.equal(sticky.ok, 200);
    assert.equal(Object.keys(sticky.byPod).length, 1, `one endpoint for alice: ${JSON.stringify(sticky.byPod)}`);
    const before = await keys(400);
    assert.equal(new Set(Object.values(before)).size, 3, 'keys spread over the three endpoints');
    // h-4 joins the Service: the control plane's watched file gets its label changed.
    setPodLabel(lab, 'h-4', 'app', 'hash');
    await waitFor('node-a to see h-4 in the hash Service', async () => {
      const dump = JSON.parse(await admin(lab, 'node-a', '/config_dump')) as { services: { clusters: { host: string; endpoints: unknown[] }[] } };
      return dump.services.clusters.find((c) => c.host.startsWith('hash.'))?.endpoints.length === 4;
    }, 5000);
    const afterJoin = await keys(400);
    const moved = Object.keys(before).filter((k) => before[k] !== afterJoin[k]);
    console.log(`consistent hash: ${moved.length}/400 keys moved when a 4th endpoint joined (${((moved.length / 400) * 100).toFixed(1)} %)`);
    assert.deepEqual([...new Set(moved.map((k) => afterJoin[k]))], ['h-4'], 'keys that move, move to the new endpoint only');
    // 1/N = 25 %; a sample of 400 keys varies by about 2 points.
    assert.ok(moved.length / 400 <= 0.25 + 0.06, `moved ${moved.length} of 400`);
  });

  it('locality: with endpoints on both nodes, a client on node-a is served on node-a', async () => {
    const s = await client(`http://${VIP.near}/`, ['--count', '40', '--concurrency', '2']);
    assert.deepEqual(s.byPod, { 'near-a': 40 }, JSON.stringify(s));
  });

  it('gRPC: calls balanced per request over one HTTP/2 connection; UNAVAILABLE from one endpoint is retried on another', async () => {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'grpc-client', '--target', `${VIP.grpc}:7070`, '--count', '60', '--summary', '-q']);
    const s = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { summary: Summary }).summary;
    console.log(`gRPC: ${JSON.stringify(s.byCode)} ${JSON.stringify(s.byPod)}`);
    assert.equal(s.ok, 60, JSON.stringify(s));
    assert.ok((s.byPod['grpc-1'] ?? 0) > 10 && (s.byPod['grpc-2'] ?? 0) > 10, `both healthy endpoints over one connection: ${JSON.stringify(s.byPod)}`);
    const m = await admin(lab, 'node-a', '/metrics');
    assert.ok(metricSum(m, 'nodemesh_retries_total', { reason: 'grpc-unavailable' }) > 0, 'calls that met grpc-3 were retried');
    // Open connections list dst as {ip, port}, closed ones as "ip:port".
    type Conn = { direction: string; dst: string | { ip: string } };
    const conns = JSON.parse(await admin(lab, 'node-a', '/connections')) as { active: Conn[]; recent: Conn[] };
    const toVip = [...conns.active, ...conns.recent].filter((c) => (typeof c.dst === 'string' ? c.dst.split(':')[0] : c.dst.ip) === VIP.grpc);
    assert.equal(toVip.length, 1, `one client connection carried the 60 calls: ${JSON.stringify(toVip)}`);
  });
});
