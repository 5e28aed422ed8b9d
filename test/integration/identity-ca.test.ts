// An in-process control plane with its CA and agents' SecretManagers over the xDS unix socket (and the TLS listener):
// issuance to the right node, refusals with reasons and counts, rotation with seconds-long certificates.

import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { CaClient } from '../../src/identity/ca-client';
import { ID_ERR, IdentityError } from '../../src/identity/errors';
import { certInfo, createCsr, generateKeyPair } from '../../src/identity/pki';
import { createSecretManager, type SecretManager } from '../../src/identity/secret-manager';
import type { CertBundle } from '../../src/identity/types';
import { silentLogger } from '../../src/telemetry/logger';

const ID = 'spiffe://cluster.local/ns/default/sa/client';
const TOKENS = { 'node-a': 'node-a-token-0123456789abcdef', 'node-b': 'node-b-token-0123456789abcdef' };

const POD = `apiVersion: v1
kind: Pod
metadata: { name: client-1, namespace: default }
spec:
  nodeName: node-a
  serviceAccountName: client
  containers: [{ name: c }]
status: { podIP: 10.1.0.5 }
`;

let dir: string;
let cp: ControlPlaneHandle;
const managers: SecretManager[] = [];

function tokenFile(node: keyof typeof TOKENS): string {
  const f = path.join(dir, `${node}.token`);
  fs.writeFileSync(f, `${TOKENS[node]}\n`, { mode: 0o600 });
  return f;
}

function manager(node: keyof typeof TOKENS, extra: Partial<Parameters<typeof createSecretManager>[0]> = {}): SecretManager {
  const sm = createSecretManager({ caAddress: cp.address, tokenFile: tokenFile(node), trustDomain: 'cluster.local', validitySeconds: 3600, log: silentLogger(), ...extra });
  managers.push(sm);
  return sm;
}

function verifiesAgainstRoot(b: CertBundle, rootPem: string): void {
  const chain = [...b.chainPem, rootPem].map((p) => new X509Certificate(p));
  for (let i = 0; i + 1 < chain.length; i++) {
    assert.ok(chain[i]!.checkIssued(chain[i + 1]!), `certificate ${i} issued by ${i + 1}`);
    assert.ok(chain[i]!.verify(chain[i + 1]!.publicKey), `certificate ${i} signed by ${i + 1}`);
  }
  assert.ok(new X509Certificate(b.chainPem[0]!).checkPrivateKey(createPrivateKey(b.keyPem)), 'the key belongs to the leaf');
}

async function metric(name: string): Promise<string> {
  return cp.metrics.registry.getSingleMetricAsString(name);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-ca-it-'));
  fs.writeFileSync(path.join(dir, 'pods.yaml'), POD);
  fs.writeFileSync(path.join(dir, 'node-tokens.json'), JSON.stringify(TOKENS));
  cp = await startControlPlane({
    config: path.join(dir, 'pods.yaml'),
    xdsAddress: `unix://${path.join(dir, 'xds.sock')}`,
    metricsPort: false,
    logger: silentLogger(),
    ca: { dir: path.join(dir, 'ca'), nodeTokensFile: path.join(dir, 'node-tokens.json'), maxCertTtlSeconds: 3600, tlsAddress: '127.0.0.1:0' },
  });
});

after(async () => {
  for (const m of managers) m.close();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('node-a gets a chain for the identity of its pod: right SPIFFE SAN, verifies against the root, counted', async () => {
  const sm = manager('node-a');
  sm.acquire(ID);
  const b = await sm.certFor(ID);
  assert.deepEqual(certInfo(b.chainPem[0]!).uris, [ID]);
  assert.deepEqual(b.rootsPem, [cp.ca!.rootPem]);
  assert.deepEqual(sm.trustBundle(), [cp.ca!.rootPem]);
  verifiesAgainstRoot(b, cp.ca!.rootPem);
  assert.ok(b.notAfter.getTime() - Date.now() <= 3600_000 && b.notAfter.getTime() - Date.now() > 3500_000);
  const s = sm.status()[0]!;
  assert.equal(s.state, 'valid');
  assert.equal(s.serial, b.serial);
  assert.match(await metric('nodemesh_ca_certificates_issued_total'), /nodemesh_ca_certificates_issued_total 1/);
});

test('node-b asking for that identity is refused with the reason, and counted', async () => {
  const sm = manager('node-b', { rotation: { retryInitialMs: 60_000 } });
  sm.acquire(ID);
  await assert.rejects(
    sm.certFor(ID),
    (e: IdentityError) =>
      e.code === ID_ERR.CA_DENIED &&
      e.message.includes(`node node-b asked for ${ID} but no pod with that service account is scheduled on node-b: pods with it are on node-a`),
  );
  const s = sm.status()[0]!;
  assert.equal(s.state, 'failed');
  assert.match(s.lastError!, /scheduled on node-b/);
  assert.match(await metric('nodemesh_ca_requests_refused_total'), /reason="not_scheduled"} 1/);
});

test('a request without a token, or with an unknown one, is UNAUTHENTICATED', async () => {
  const keys = await generateKeyPair();
  const csr = createCsr(keys, ID);
  const anonymous = new CaClient({ address: cp.address });
  await assert.rejects(anonymous.createCertificate(csr, 60), (e: IdentityError) => e.code === ID_ERR.CA_UNAUTHENTICATED && /no node credential/.test(e.message));
  anonymous.close();
  const wrong = path.join(dir, 'wrong.token');
  fs.writeFileSync(wrong, 'not-a-known-token-at-all');
  const impostor = new CaClient({ address: cp.address, tokenFile: wrong });
  await assert.rejects(impostor.createCertificate(csr, 60), (e: IdentityError) => e.code === ID_ERR.CA_UNAUTHENTICATED && /not in .*node-tokens.json/.test(e.message));
  impostor.close();
  assert.match(await metric('nodemesh_ca_requests_refused_total'), /reason="unauthenticated"} 2/);
});

test('the TLS listener serves the same CA to agents that verify it with the root', async () => {
  const rootFile = path.join(dir, 'root.pem');
  fs.writeFileSync(rootFile, cp.ca!.rootPem);
  const sm = createSecretManager({ caAddress: cp.ca!.tlsAddress!, caRootFile: rootFile, tokenFile: tokenFile('node-a'), validitySeconds: 600, log: silentLogger() });
  managers.push(sm);
  sm.acquire(ID);
  const b = await sm.certFor(ID);
  assert.deepEqual(certInfo(b.chainPem[0]!).uris, [ID]);
});

test('4 s certificates keep rotating (twice within 15 s even on a loaded machine), each with a new serial that verifies', async () => {
  const sm = manager('node-a', { validitySeconds: 4 });
  const seen: CertBundle[] = [];
  sm.onRotate((id, b) => {
    if (id === ID) seen.push(b);
  });
  sm.acquire(ID);
  // rotation is due at about half the lifetime; the bound only stops a broken rotation from hanging the test
  const end = Date.now() + 15_000;
  while (seen.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.ok(seen.length >= 3, `expected the first certificate and two rotations, saw ${seen.length}`);
  assert.equal(new Set(seen.map((b) => b.serial)).size, seen.length, 'every rotation has a new serial');
  for (const b of seen) {
    verifiesAgainstRoot(b, cp.ca!.rootPem);
    assert.ok(b.notAfter.getTime() - b.notBefore.getTime() <= 4000 + 30_000 + 1000, 'lifetime ~4 s plus the backdate');
  }
  assert.equal(sm.current(ID)!.serial, seen[seen.length - 1]!.serial);
});
