// L7 authorization and per-request telemetry in the lab, across nodes over HBONE mTLS: AuthorizationPolicy
// on methods, paths (exact, prefix and suffix forms) and a `when` on a request header, with identities from
// the mTLS peer; denials answered 403 with the reason, counted with response_flags="DENY" and logged; Istio's
// semantics for HTTP-only fields in rules that apply to TCP ports. Then
// Istio's request metrics as exact Prometheus lines from both reporters, one access line per request per
// agent, and 1,000 distinct paths leaving the series count unchanged.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LabState } from '../../src/lab';
import type { BatchAnswer, BatchRequest } from '../helpers/http-batch';
import type { ProbeResult } from '../helpers/server-first';
import { admin, down, execInPod, isRoot, metricSum, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const HTTP_BATCH = path.resolve(__dirname, '../helpers/http-batch.js');
const SERVER_FIRST = path.resolve(__dirname, '../helpers/server-first.js');
const API = '198.18.132.10';
const METER = '198.18.132.11';
const VAULT = '198.18.132.13';
const NO_ALLOW = 'no ALLOW policy matched';
const DENY_ADMIN = 'denied by DENY policy default.api-deny-admin (rule default.api-deny-admin[0])';
const SA = (name: string): string => `spiffe://cluster.local/ns/default/sa/${name}`;

function samplePod(name: string, app: string): string {
  return `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: { app: ${app}, version: v1 } }
spec:
  nodeName: node-b
  serviceAccountName: ${app}
  containers: [{ name: http, command: [nodemesh, sample, http, --port, "8080", --name, ${app}, --version, v1] }]
---`;
}

const MANIFEST = `
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default, labels: { app: client, version: v7 } }
spec: { nodeName: node-a, serviceAccountName: client, containers: [{ name: main, command: [sleep, infinity] }] }
# No Service selects the client: node-b's agent knows its workload, app and version only from what node-a's
# agent says of it on each HBONE CONNECT.
---
apiVersion: v1
kind: Pod
metadata: { name: other, namespace: default, labels: { app: other } }
spec: { nodeName: node-a, serviceAccountName: other, containers: [{ name: main, command: [sleep, infinity] }] }
---
${samplePod('api-1', 'api')}
${samplePod('meter-1', 'meter')}
apiVersion: v1
kind: Service
metadata: { name: api, namespace: default }
spec: { clusterIP: ${API}, selector: { app: api }, ports: [{ name: web, port: 80, targetPort: 8080, appProtocol: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: meter, namespace: default }
spec: { clusterIP: ${METER}, selector: { app: meter }, ports: [{ name: http-web, port: 80, targetPort: 8080 }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-allow, namespace: default }
spec:
  selector: { matchLabels: { app: api } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }]
      to: [{ operation: { methods: [GET], paths: ["/public/*", "*.txt"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }]
      to: [{ operation: { methods: [POST], paths: ["/submit", "/admin*"] } }]
      when: [{ key: "request.headers[x-token]", values: ["let-me-in"] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-deny-admin, namespace: default }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { methods: [POST], paths: ["/admin*"] } }] }]
---
# TCP ports with rules that name HTTP-only fields (Istio's semantics: such an ALLOW rule is dropped, such a
# DENY rule loses those fields and so denies more).
apiVersion: v1
kind: Pod
metadata: { name: vault-1, namespace: default, labels: { app: vault } }
spec: { nodeName: node-b, serviceAccountName: vault, containers: [{ name: main, command: ${JSON.stringify([process.execPath, SERVER_FIRST, 'serve', '9000', '9001'])} }] }
---
apiVersion: v1
kind: Service
metadata: { name: vault, namespace: default }
spec: { clusterIP: ${VAULT}, selector: { app: vault }, ports: [{ name: tcp-a, port: 9000, targetPort: 9000 }, { name: tcp-b, port: 9001, targetPort: 9001 }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: vault-allow, namespace: default }
spec:
  selector: { matchLabels: { app: vault } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }]
      to: [{ operation: { ports: ["9000"], paths: ["/x"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/default/sa/other"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: vault-deny, namespace: default }
spec:
  selector: { matchLabels: { app: vault } }
  action: DENY
  rules: [{ to: [{ operation: { ports: ["9001"], methods: [POST] } }] }]
`;

interface AccessLine {
  reporter: string;
  method: string;
  path: string;
  protocol: string;
  status: number;
  response_flags: string;
  request_id: string;
  authority: string;
  user_agent: string | null;
  upstream_host: string | null;
  upstream_cluster: string | null;
  bytes_received: number;
  bytes_sent: number;
  duration_ms: number;
  source_principal: string | null;
  detail: string | null;
}

describe('L7 authorization and request telemetry across nodes in the lab', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)', timeout: 120_000 }, () => {
  const lab = uniqueLabName('la');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  async function batch(pod: string, reqs: BatchRequest[]): Promise<BatchAnswer[]> {
    const r = await execInPod(lab, pod, [process.execPath, HTTP_BATCH, JSON.stringify(reqs)], 20_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as BatchAnswer);
    assert.equal(out.length, reqs.length);
    return out;
  }

  /** Access lines of one node's agent for request ids with `prefix`. */
  function accessLines(node: string, prefix: string): AccessLine[] {
    const file = state.nodes.find((n) => n.name === node)!.agentLog;
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`"request_id":"${prefix}`) && l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as AccessLine);
  }

  it('AuthorizationPolicy on methods, paths and a header: allowed requests served, the rest 403 with the reason', async () => {
    const rid = (n: string): string => `authz-${lab}-${n}`;
    const cases: { pod: string; req: BatchRequest; status: number; reason?: string }[] = [
      { pod: 'client', req: { url: `http://${API}/public/a`, headers: { 'x-request-id': rid('public') } }, status: 200 },
      { pod: 'client', req: { url: `http://${API}/docs/readme.txt`, headers: { 'x-request-id': rid('suffix') } }, status: 200 },
      { pod: 'client', req: { url: `http://${API}/private`, headers: { 'x-request-id': rid('private') } }, status: 403, reason: NO_ALLOW },
      { pod: 'client', req: { url: `http://${API}/public/a`, method: 'PUT', body: 'x', headers: { 'x-request-id': rid('put') } }, status: 403, reason: NO_ALLOW },
      { pod: 'client', req: { url: `http://${API}/submit`, method: 'POST', body: 'form', headers: { 'x-request-id': rid('token'), 'x-token': 'let-me-in' } }, status: 200 },
      { pod: 'client', req: { url: `http://${API}/submit`, method: 'POST', body: 'form', headers: { 'x-request-id': rid('bad-token'), 'x-token': 'guess' } }, status: 403, reason: NO_ALLOW },
      { pod: 'client', req: { url: `http://${API}/submit`, method: 'POST', body: 'form', headers: { 'x-request-id': rid('no-token') } }, status: 403, reason: NO_ALLOW },
      // Allowed by the ALLOW policy, denied by the DENY policy: DENY comes first.
      { pod: 'client', req: { url: `http://${API}/admin/users`, method: 'POST', body: '{}', headers: { 'x-request-id': rid('admin'), 'x-token': 'let-me-in' } }, status: 403, reason: DENY_ADMIN },
      { pod: 'client', req: { url: `http://${API}/administrator`, method: 'POST', body: '{}', headers: { 'x-request-id': rid('admin-prefix'), 'x-token': 'let-me-in' } }, status: 403, reason: DENY_ADMIN },
      // Another identity (the mTLS peer's principal) on an allowed path.
      { pod: 'other', req: { url: `http://${API}/public/a`, headers: { 'x-request-id': rid('other') } }, status: 403, reason: NO_ALLOW },
    ];
    const deniedBefore = metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_workload: 'api-1', response_code: '403', response_flags: 'DENY' });
    const answers = [...(await batch('client', cases.filter((c) => c.pod === 'client').map((c) => c.req))), ...(await batch('other', cases.filter((c) => c.pod === 'other').map((c) => c.req)))];
    const ordered = [...cases.filter((c) => c.pod === 'client'), ...cases.filter((c) => c.pod === 'other')];
    ordered.forEach((c, i) => {
      const a = answers[i]!;
      const what = `${c.pod} ${c.req.method ?? 'GET'} ${c.req.url}`;
      assert.equal(a.status, c.status, `${what}: ${JSON.stringify(a)}`);
      if (c.status === 200) assert.equal((a.body as { pod: string }).pod, 'api-1', what);
      else {
        assert.equal(a.body, `RBAC: access denied: ${c.reason!}\n`, what);
      }
    });
    const denied = ordered.filter((c) => c.status === 403).length;
    // Counted at the destination, where the decision was made.
    await waitFor('the denials to be counted', async () =>
      metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', destination_workload: 'api-1', response_code: '403', response_flags: 'DENY' }) - deniedBefore === denied,
    );
    const byPrincipal = metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { reporter: 'destination', source_principal: SA('other'), response_code: '403', response_flags: 'DENY' });
    assert.equal(byPrincipal, 1, "the other identity's denial carries its principal");
    // And logged, one line each at the destination agent, with the flag.
    await waitFor('the access lines', async () => accessLines('node-b', `authz-${lab}-`).length === ordered.length, 5000);
    const lines = accessLines('node-b', `authz-${lab}-`);
    for (const c of ordered) {
      const l = lines.filter((x) => x.request_id === c.req.headers!['x-request-id']);
      assert.equal(l.length, 1, c.req.headers!['x-request-id']);
      assert.equal(l[0]!.status, c.status);
      assert.equal(l[0]!.response_flags, c.status === 403 ? 'DENY' : '-');
      assert.equal(l[0]!.source_principal, SA(c.pod));
    }
  });

  it('HTTP-only fields on TCP ports: an ALLOW rule naming a path is dropped, a DENY rule naming a method denies the port', async () => {
    const dialogue = async (pod: string, port: number): Promise<ProbeResult> => {
      const r = await execInPod(lab, pod, [process.execPath, SERVER_FIRST, 'probe', VAULT, String(port), '1']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as ProbeResult;
    };
    const deniedBefore = metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_tcp_connections_opened_total', { destination_workload: 'vault-1', response_flags: 'DENY' });
    assert.equal((await dialogue('other', 9000)).ok, true, 'the rule without HTTP fields allows sa/other');
    assert.equal((await dialogue('client', 9000)).ok, false, "sa/client's only rule names a path: dropped on TCP");
    assert.equal((await dialogue('other', 9001)).ok, false, 'the DENY rule without its method covers every connection to 9001');
    await waitFor('the two refusals to be counted', async () =>
      metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_tcp_connections_opened_total', { destination_workload: 'vault-1', response_flags: 'DENY' }) - deniedBefore === 2,
    );
  });

  it("Istio's request metrics: exact Prometheus lines from both reporters, one access line per request per agent", async () => {
    const rid = (n: string): string => `meter-${lab}-${n}`;
    const reqs: BatchRequest[] = [
      ...[1, 2, 3].map((i) => ({ url: `http://${METER}/m/${i}?user=${i}`, headers: { 'x-request-id': rid(String(i)), 'user-agent': 'meter-test/1' } })),
      { url: `http://${METER}/m/broken?status=500`, headers: { 'x-request-id': rid('500'), 'user-agent': 'meter-test/1' } },
    ];
    const answers = await batch('client', reqs);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 500]);
    const labels = (reporter: string, code: string): string =>
      `reporter="${reporter}",source_workload="client",source_workload_namespace="default",source_principal="${SA('client')}",source_app="client",source_version="v7",` +
      `destination_workload="meter-1",destination_workload_namespace="default",destination_principal="${SA('meter')}",destination_app="meter",destination_version="v1",` +
      `destination_service="meter.default.svc.cluster.local",destination_service_name="meter",destination_service_namespace="default",` +
      `request_protocol="http",response_code="${code}",grpc_response_status="-",response_flags="-",connection_security_policy="mutual_tls"`;
    const series = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes('destination_workload="meter-1"'));
    for (const [node, reporter] of [['node-a', 'source'], ['node-b', 'destination']] as const) {
      let text = '';
      await waitFor(`${reporter} metrics`, async () => series((text = await admin(lab, node, '/metrics')), 'istio_requests_total').length === 2, 5000);
      assert.deepEqual(series(text, 'istio_requests_total').sort(), [`istio_requests_total{${labels(reporter, '200')}} 3`, `istio_requests_total{${labels(reporter, '500')}} 1`].sort(), node);
      assert.deepEqual(series(text, 'istio_request_duration_milliseconds_count').sort(), [`istio_request_duration_milliseconds_count{${labels(reporter, '200')}} 3`, `istio_request_duration_milliseconds_count{${labels(reporter, '500')}} 1`].sort(), node);
      assert.deepEqual(series(text, 'istio_request_bytes_count').sort(), [`istio_request_bytes_count{${labels(reporter, '200')}} 3`, `istio_request_bytes_count{${labels(reporter, '500')}} 1`].sort(), node);
      assert.deepEqual(series(text, 'istio_response_bytes_count').sort(), [`istio_response_bytes_count{${labels(reporter, '200')}} 3`, `istio_response_bytes_count{${labels(reporter, '500')}} 1`].sort(), node);
      // Istio's default buckets, cumulative: every request is within the largest finite one.
      const buckets = series(text, 'istio_request_duration_milliseconds_bucket').filter((l) => l.includes('response_code="200"')).map((l) => /le="([^"]+)"/.exec(l)![1]);
      assert.deepEqual(buckets, ['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf']);
      assert.doesNotMatch(series(text, 'istio_requests_total').join('\n'), /\/m\/|user=|meter-test/, 'no path, query or user agent in a label');
      // One access line per request on each agent, naming the request as the client sent it.
      await waitFor(`${reporter} access lines`, async () => accessLines(node, rid('')).length === reqs.length, 5000);
      const lines = accessLines(node, rid(''));
      for (const [i, r] of reqs.entries()) {
        const l = lines.filter((x) => x.request_id === r.headers!['x-request-id']);
        assert.equal(l.length, 1, `${node} ${r.url}`);
        const u = new URL(r.url);
        assert.deepEqual(
          { reporter: l[0]!.reporter, method: l[0]!.method, path: l[0]!.path, protocol: l[0]!.protocol, status: l[0]!.status, flags: l[0]!.response_flags, authority: l[0]!.authority, ua: l[0]!.user_agent },
          { reporter, method: 'GET', path: u.pathname + u.search, protocol: 'HTTP/1.1', status: answers[i]!.status, flags: '-', authority: METER, ua: 'meter-test/1' },
        );
        assert.equal(l[0]!.bytes_sent, Number(answers[i]!.headers['content-length']), 'response body bytes');
        assert.equal(typeof l[0]!.duration_ms, 'number');
        assert.match(l[0]!.upstream_host ?? '', /^198\.19\.\d+\.\d+:8080$/);
        if (reporter === 'source') assert.equal(l[0]!.upstream_cluster, 'outbound|80||meter.default.svc.cluster.local');
      }
    }
  });

  it('1,000 distinct paths leave the series count unchanged on both agents', async () => {
    // The request-level series (connection-level ones come and go as pools close idle tunnels).
    const count = async (node: string): Promise<string[]> =>
      (await admin(lab, node, '/metrics'))
        .split('\n')
        .filter((l) => /^istio_(request|response)/.test(l))
        .map((l) => l.slice(0, l.lastIndexOf(' ')))
        .sort();
    // One request first, so that every series the thousand can touch exists.
    await batch('client', [{ url: `http://${METER}/warm` }]);
    await waitFor('the warm-up counted at the destination', async () => metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { destination_workload: 'meter-1', response_code: '200' }) >= 4, 5000);
    const before = { a: await count('node-a'), b: await count('node-b') };
    const destBefore = metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { destination_workload: 'meter-1', response_code: '200' });
    const r = await execInPod(lab, 'client', ['curl', '-sS', '--http1.1', '-o', '/dev/null', '-w', '%{http_code}\n', `http://${METER}/distinct/[1-1000]`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...new Set(r.stdout.trim().split('\n'))], ['200']);
    assert.equal(r.stdout.trim().split('\n').length, 1000);
    await waitFor('the thousand counted at the destination', async () => metricSum(await admin(lab, 'node-b', '/metrics'), 'istio_requests_total', { destination_workload: 'meter-1', response_code: '200' }) - destBefore === 1000, 10_000);
    assert.deepEqual({ a: await count('node-a'), b: await count('node-b') }, before);
  });
});
