// Policy over delta ADS: a policy file change pushes a new inbound listener whose decoded policy denies what it should.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { authorize, type InboundPolicy } from '../../src/state/authz';
import { silentLogger } from '../../src/telemetry/logger';
import { decodeResource } from '../../src/xds/agent-resources';
import { toStruct, type DeltaDiscoveryResponse } from '../../src/xds/protos';
import { LDS } from '../../src/xds/resource-types';
import { rawAdsClient, RawAdsStream, type RawAdsClient } from '../helpers/raw-ads';

const PODS = `apiVersion: v1
kind: Pod
metadata: { name: web, namespace: app, labels: { app: web } }
spec: { nodeName: n1, serviceAccountName: web, containers: [{ name: c }] }
status: { podIP: 10.0.0.1 }
`;

const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-client, namespace: app }
spec:
  selector: { matchLabels: { app: web } }
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/app/sa/client"] } }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: app }
spec: { mtls: { mode: STRICT } }
`;

const CLIENT = 'spiffe://cluster.local/ns/app/sa/client';
const OTHER = 'spiffe://cluster.local/ns/app/sa/other';

let dir: string;
let cp: ControlPlaneHandle;
let client: RawAdsClient;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-policy-xds-'));
  fs.writeFileSync(path.join(dir, 'pods.yaml'), PODS);
  cp = await startControlPlane({ config: dir, xdsAddress: '127.0.0.1:0', metricsPort: false, watchDebounceMs: 20, pushDebounceMs: 10, logger: silentLogger() });
  client = rawAdsClient(cp.address);
});

after(async () => {
  client?.close();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The inbound listener in a delta response, decoded as the agent does: its version and web's policy. */
function inbound(res: DeltaDiscoveryResponse): { version: string; web: InboundPolicy } {
  const r = res.resources.find((x) => x.name === 'inbound|n1');
  assert.ok(r, `no inbound|n1 in ${res.resources.map((x) => x.name).join(', ')}`);
  const d = decodeResource(LDS, r.resource).resource;
  assert.equal(d.kind, 'inbound');
  if (d.kind !== 'inbound') throw new Error('unreachable');
  return { version: r.version, web: d.policies.get('10.0.0.1')! };
}

function allowed(p: InboundPolicy, principal: string | null): boolean {
  return authorize(p, { principal, sourceIp: '10.0.0.9', destinationPort: 8080 }).allowed;
}

/** Next LDS response that carries the inbound listener (ACKing each one). */
async function nextInbound(s: RawAdsStream<DeltaDiscoveryResponse>): Promise<{ version: string; web: InboundPolicy }> {
  for (;;) {
    const res = await s.next(3000);
    s.send({ type_url: res.type_url, response_nonce: res.nonce });
    if (res.type_url === LDS && res.resources.some((x) => x.name === 'inbound|n1')) return inbound(res);
  }
}

test('adding, breaking and removing a policy file pushes inbound listener versions that enforce it', async () => {
  const s = new RawAdsStream(client.DeltaAggregatedResources());
  try {
    s.send({ node: { id: 'agent-n1', cluster: 'nodemesh', metadata: toStruct({ NODE_NAME: 'n1' }) }, type_url: LDS, resource_names_subscribe: [] });
    const first = await nextInbound(s);
    assert.equal(first.web.mtlsMode, 'PERMISSIVE');
    assert.equal(allowed(first.web, OTHER), true);
    assert.equal(allowed(first.web, null), true);

    fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
    const second = await nextInbound(s);
    assert.notEqual(second.version, first.version);
    assert.equal(second.web.mtlsMode, 'STRICT');
    assert.equal(allowed(second.web, CLIENT), true);
    assert.equal(allowed(second.web, OTHER), false);
    assert.equal(allowed(second.web, null), false);
    assert.deepEqual(authorize(second.web, { principal: CLIENT, sourceIp: '10.0.0.9', destinationPort: 1 }).policy, 'app.only-client');

    // A JWT field is rejected with file:line:field; the last good policy stays, so nothing is pushed.
    fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY.replace('principals:', 'requestPrincipals: ["*"], principals:'));
    for (let i = 0; i < 50 && Object.keys(cp.store.issues()).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const issues = Object.values(cp.store.issues()).flat();
    assert.equal(issues.length, 1);
    assert.deepEqual([issues[0].line, issues[0].field], [7, 'spec.rules[0].from[0].source.requestPrincipals']);
    assert.match(issues[0].message, /needs request authentication \(JWT, RequestAuthentication\), which nodemesh does not support/);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(s.pending(), 0);

    fs.rmSync(path.join(dir, 'policy.yaml'));
    const third = await nextInbound(s);
    assert.equal(third.version, first.version);
    assert.equal(allowed(third.web, OTHER), true);
  } finally {
    s.close();
  }
});
