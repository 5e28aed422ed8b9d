// Safe ports: the agent's metrics and readiness listeners serve only their own paths; xDS over TLS admits an agent
// only with a node credential, and only for its own node; plaintext clients get nothing from the TLS port.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { after, before, describe, it } from 'node:test';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { silentLogger } from '../../src/telemetry/logger';
import { buildReport } from '../../src/telemetry/mesh-report/build-report';
import { ReportClient } from '../../src/telemetry/mesh-report/report-client';
import { XdsClient } from '../../src/xds/ads-client';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { waitFor } from '../helpers/wait';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

function get(port: number, p: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('agent listeners on the node address', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-ports-'));
  let agent: ReturnType<typeof testAgent> | undefined;
  let metricsPort = 0;
  let readyPort = 0;
  before(async () => {
    metricsPort = await freePort();
    readyPort = await freePort();
    agent = testAgent(dir, new FakeDatapath(), { metricsPort, readyPort, probeHost: '127.0.0.1' });
    await agent.start();
  });
  after(async () => {
    await agent?.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('metrics port: /metrics only', async () => {
    const m = await get(metricsPort, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /# HELP/);
    for (const p of ['/config_dump', '/connections', '/logging', '/healthz/ready', '/']) {
      const r = await get(metricsPort, p);
      assert.equal(r.status, 404, `${p} on the metrics port`);
      assert.match(r.body, /serves only \/metrics/);
    }
    assert.equal((await get(metricsPort, '/logging?level=debug', 'POST')).status, 404);
    assert.equal(agent!.logLevel, 'silent', 'the log level did not change');
  });

  it('readiness port: /healthz/ready and /healthz/live only', async () => {
    assert.equal((await get(readyPort, '/healthz/ready')).status, 200);
    assert.equal((await get(readyPort, '/healthz/live')).status, 200);
    for (const p of ['/metrics', '/config_dump', '/connections']) assert.equal((await get(readyPort, p)).status, 404, `${p} on the readiness port`);
  });
});

describe('xDS over TLS with node credentials', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-sec-'));
  let cp: ControlPlaneHandle | undefined;
  const clients: XdsClient[] = [];
  const tokens = { 'node-a': 'a'.repeat(32), 'node-b': 'b'.repeat(32) };
  before(async () => {
    fs.writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify(tokens));
    fs.writeFileSync(path.join(dir, 'cfg.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: { name: s, namespace: default }\nspec: { clusterIP: 198.18.200.1, ports: [{ port: 80 }] }\n');
    cp = await startControlPlane({
      config: path.join(dir, 'cfg.yaml'),
      xdsAddress: '127.0.0.1:0',
      secureAddress: '127.0.0.1:0',
      metricsPort: false,
      logger: silentLogger(),
      ca: { nodeTokensFile: path.join(dir, 'tokens.json') },
    });
    fs.writeFileSync(path.join(dir, 'root.pem'), cp.ca!.rootPem);
    fs.writeFileSync(path.join(dir, 'a.token'), tokens['node-a']);
    fs.writeFileSync(path.join(dir, 'bad.token'), 'x'.repeat(32));
  });
  after(async () => {
    for (const c of clients) c.close();
    await cp?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const client = (node: string, tls: { rootFile: string; tokenFile?: string } | undefined): XdsClient => {
    const c = new XdsClient({ address: cp!.secureAddress!, node, mode: 'delta', log: silentLogger(), registry: new Registry(), tls }, { apply: () => undefined });
    clients.push(c);
    c.start();
    return c;
  };
  const lastError = (c: XdsClient): string => String(c.status().lastError ?? '');

  it('an agent with its token and the mesh root gets its config', async () => {
    const c = client('node-a', { rootFile: path.join(dir, 'root.pem'), tokenFile: path.join(dir, 'a.token') });
    await waitFor('node-a synced over TLS', async () => c.synced());
  });

  it('a wrong token is refused with the reason', async () => {
    const c = client('node-a', { rootFile: path.join(dir, 'root.pem'), tokenFile: path.join(dir, 'bad.token') });
    await waitFor('refusal', async () => /not in .*tokens\.json/.test(lastError(c)));
    assert.equal(c.synced(), false);
  });

  it("a node's token does not buy another node's config", async () => {
    const c = client('node-b', { rootFile: path.join(dir, 'root.pem'), tokenFile: path.join(dir, 'a.token') });
    await waitFor('permission denied', async () => /belongs to node node-a, but the request is for node node-b/.test(lastError(c)));
    assert.equal(c.synced(), false);
  });

  it("the telemetry stream goes over TLS with the node's token, and speaks only for that node", async () => {
    const reporters: ReportClient[] = [];
    const report = (node: string, tokenFile: string, claims = node): ReportClient => {
      const r = new ReportClient({
        address: cp!.secureAddress!,
        tls: { rootFile: path.join(dir, 'root.pem'), tokenFile: path.join(dir, tokenFile) },
        log: silentLogger(),
        intervalMs: 100,
        onTap: () => undefined,
        report: async () => buildReport({ node: claims, version: 't', notReadyReason: null, startedAtMs: Date.now(), threads: 1, pods: 0, metrics: [], xds: null, identities: [], endpoints: [], tracing: null }),
      });
      reporters.push(r);
      r.start();
      return r;
    };
    try {
      report('node-a', 'a.token');
      report('node-a', 'a.token', 'node-b'); // a's credential claiming b
      report('node-a', 'bad.token', 'node-c');
      await waitFor('node-a reported over TLS', async () => cp!.mesh.reports().some((r) => r.report.node === 'node-a'));
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(cp!.mesh.reports().map((r) => r.report.node), ['node-a'], 'neither the other node nor a bad token got a report in');
    } finally {
      for (const r of reporters) r.close();
    }
  });

  it('no token, or plaintext, gets nothing', async () => {
    const noToken = client('node-a', { rootFile: path.join(dir, 'root.pem') });
    await waitFor('no credential refused', async () => /no node credential/.test(lastError(noToken)));
    const plain = client('node-a', undefined);
    await waitFor('plaintext fails', async () => lastError(plain) !== '');
    assert.equal(plain.synced(), false);
  });
});
