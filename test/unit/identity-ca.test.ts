// CA: CSR checks and SAN extraction, leaf shape and lifetimes, root persistence, operator intermediate + chain loading.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import { CertificateAuthority, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../src/controlplane/ca/authority';
import { checkCsr } from '../../src/controlplane/ca/csr';
import { CA_ERR, CaError, CaRefusal } from '../../src/controlplane/ca/errors';
import { generateForgeKeyPair, toForgeKeyPair } from '../../src/controlplane/ca/keys';
import { certInfo, chainProblem, createCsr, generateKeyPair, normalizePem, randomSerialHex, type KeyPair } from '../../src/identity/pki';

const ID = 'spiffe://cluster.local/ns/default/sa/client';
let tmp: string;
/** One key in both forms: Node's (what the agent signs its CSRs with) and node-forge's (what the CA uses). */
let nodeKeys: KeyPair;
let keys: forge.pki.rsa.KeyPair;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-ca-unit-'));
  nodeKeys = await generateKeyPair();
  keys = toForgeKeyPair(nodeKeys);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function csrWith(uris: string[], signWith = keys): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: uris.map((value) => ({ type: 6, value })) }] }]);
  csr.sign(signWith.privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

function refusal(fn: () => unknown): CaRefusal {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CaRefusal, `expected a CaRefusal, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

function pemDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

test('the agent builds its CSR without node-forge, byte for byte what node-forge writes for the same key and URI', () => {
  // RSA PKCS#1 v1.5 signatures are deterministic, so equal DER means equal structure and signature.
  const ours = createCsr(nodeKeys, ID);
  assert.match(ours, /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/);
  assert.deepEqual(pemDer(ours), pemDer(csrWith([ID])));
  const long = `spiffe://cluster.local/ns/${'n'.repeat(63)}/sa/${'s'.repeat(120)}`; // two length octets in the SAN
  assert.deepEqual(pemDer(createCsr(nodeKeys, long)), pemDer(csrWith([long])));
  assert.throws(() => createCsr(nodeKeys, 'spiffe://cluster.local/ns/dé/sa/x'), /printable ASCII/);
});

test('a CSR with one SPIFFE URI SAN gives its identity; the agent helper builds exactly that', () => {
  const c = checkCsr(createCsr(nodeKeys, ID), 'cluster.local');
  assert.equal(c.spiffeId, ID);
  assert.deepEqual(c.identity, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'client' });
});

test('CSRs with zero or several URIs, a non-SPIFFE URI, a bad signature or no PEM are invalid; another trust domain is denied', async () => {
  const none = refusal(() => checkCsr(csrWith([]), 'cluster.local'));
  assert.equal(none.status, grpc.status.INVALID_ARGUMENT);
  assert.equal(none.reason, 'invalid_csr');
  assert.match(none.message, /exactly one URI SAN.*it has 0/);

  const two = refusal(() => checkCsr(csrWith([ID, 'spiffe://cluster.local/ns/default/sa/other']), 'cluster.local'));
  assert.match(two.message, /it has 2: spiffe:\/\/cluster.local\/ns\/default\/sa\/client, spiffe:\/\/cluster.local\/ns\/default\/sa\/other/);

  assert.match(refusal(() => checkCsr(csrWith(['https://example.com/x']), 'cluster.local')).message, /not a SPIFFE workload ID/);

  const other = await generateForgeKeyPair();
  const forged = refusal(() => checkCsr(csrWith([ID], other), 'cluster.local'));
  assert.equal(forged.reason, 'invalid_csr');
  assert.match(forged.message, /signature does not verify/);

  assert.match(refusal(() => checkCsr('hello', 'cluster.local')).message, /not a PEM certificate request/);

  const td = refusal(() => checkCsr(createCsr(nodeKeys, 'spiffe://other.domain/ns/default/sa/client'), 'cluster.local'));
  assert.equal(td.status, grpc.status.PERMISSION_DENIED);
  assert.equal(td.reason, 'trust_domain');
  assert.match(td.message, /trust domain other.domain, but this CA signs for cluster.local only/);
});

test('leaves: SAN URI only, no subject, server+client usage, 128-bit serial, min(requested, max) with backdate', async () => {
  let now = Date.UTC(2031, 0, 1, 12, 0, 0);
  const ca = await CertificateAuthority.create({ maxCertTtlSeconds: 3600, backdateSeconds: 30, now: () => now });
  const r = ca.issue({ publicKey: keys.publicKey, uris: [ID], ttlSeconds: 120 });
  const x = new X509Certificate(r.certPem);
  assert.equal(x.subject, undefined);
  assert.equal(x.subjectAltName, `URI:${ID}`);
  assert.deepEqual(x.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.equal(x.ca, false);
  assert.equal(r.notBefore.getTime(), now - 30_000);
  assert.equal(r.notAfter.getTime(), now + 120_000);
  assert.equal(r.chain.length, 2);
  assert.equal(r.chain[1], ca.rootPem);
  assert.equal(chainProblem(r.chain), null);
  assert.ok(r.serial.length >= 31 && r.serial.length <= 32, r.serial);

  now += 1000;
  const capped = ca.issue({ publicKey: keys.publicKey, uris: [ID], ttlSeconds: 99_999 });
  assert.equal(capped.notAfter.getTime(), now + 3600_000);
  assert.notEqual(capped.serial, r.serial);
  assert.equal(ca.issue({ publicKey: keys.publicKey, uris: [ID] }).notAfter.getTime(), now + 3600_000, 'default 24 h is capped by the maximum');

  for (let i = 0; i < 50; i++) {
    const s = randomSerialHex();
    assert.match(s, /^(00[89a-f][0-9a-f]{31}|[1-7][0-9a-f]{31}|0[1-9a-f][0-9a-f]{30})$/, 'DER-minimal positive 128-bit serial');
  }
});

test('a root generated in --ca-dir is kept (key 0600) and reused on restart; half a directory is an error', async () => {
  const dir = path.join(tmp, 'ca');
  const first = await CertificateAuthority.create({ dir });
  assert.match(first.origin, /^generated /);
  assert.equal(fs.statSync(path.join(dir, ROOT_KEY_FILE)).mode & 0o777, 0o600);
  const second = await CertificateAuthority.create({ dir });
  assert.match(second.origin, /^loaded /);
  assert.equal(second.rootPem, first.rootPem);
  const leaf = second.issue({ publicKey: keys.publicKey, uris: [ID], ttlSeconds: 60 });
  assert.equal(chainProblem([leaf.certPem, first.rootPem]), null, 'a leaf from the restarted CA verifies with the first root');

  const half = path.join(tmp, 'half');
  fs.mkdirSync(half);
  fs.copyFileSync(path.join(dir, ROOT_CERT_FILE), path.join(half, ROOT_CERT_FILE));
  await assert.rejects(CertificateAuthority.create({ dir: half }), (e: CaError) => e.code === CA_ERR.DIR && /has root-cert.pem but not root-key.pem/.test(e.message));
});

/** An external root and an intermediate it signs (the operator's PKI). */
function caCert(subjectCn: string, key: forge.pki.rsa.KeyPair, issuer: { cn: string; key: forge.pki.rsa.KeyPair } | null, isCa = true): string {
  const c = forge.pki.createCertificate();
  c.publicKey = key.publicKey;
  c.serialNumber = randomSerialHex();
  c.validity.notBefore = new Date(Date.now() - 3600_000);
  c.validity.notAfter = new Date(Date.now() + 86400_000 * 30);
  c.setSubject([{ shortName: 'CN', value: subjectCn }]);
  c.setIssuer([{ shortName: 'CN', value: issuer?.cn ?? subjectCn }]);
  c.setExtensions([
    { name: 'basicConstraints', cA: isCa, critical: true },
    { name: 'keyUsage', keyCertSign: isCa, cRLSign: isCa, digitalSignature: !isCa, critical: true },
  ]);
  c.sign((issuer?.key ?? key).privateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(c);
}

test('an intermediate chained to an external root: leaves chain leaf, intermediate, root; bad files say what is wrong', async () => {
  const rootKey = await generateForgeKeyPair();
  const interKey = await generateForgeKeyPair();
  const rootPem = normalizePem(caCert('corp root', rootKey, null));
  const interPem = normalizePem(caCert('nodemesh intermediate', interKey, { cn: 'corp root', key: rootKey }));
  const f = (name: string, data: string): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const certFile = f('inter.pem', interPem);
  const keyFile = f('inter-key.pem', forge.pki.privateKeyToPem(interKey.privateKey));
  const chainFile = f('chain.pem', rootPem);

  const ca = await CertificateAuthority.create({ certFile, keyFile, chainFile });
  assert.equal(ca.rootPem, rootPem);
  const leaf = ca.issue({ publicKey: keys.publicKey, uris: [ID], ttlSeconds: 60 });
  assert.equal(leaf.chain.length, 3);
  assert.equal(leaf.chain[1], interPem);
  assert.equal(leaf.chain[2], rootPem);
  assert.equal(chainProblem(leaf.chain), null);
  assert.equal(certInfo(leaf.chain[0]!).uris[0], ID);

  // The chain file may also start with the intermediate itself.
  assert.equal((await CertificateAuthority.create({ certFile, keyFile, chainFile: f('full.pem', interPem + rootPem) })).caChain.length, 2);

  const wrongKey = f('wrong-key.pem', forge.pki.privateKeyToPem(rootKey.privateKey));
  await assert.rejects(CertificateAuthority.create({ certFile, keyFile: wrongKey, chainFile }), (e: CaError) => e.code === CA_ERR.KEY_MISMATCH);

  await assert.rejects(
    CertificateAuthority.create({ certFile, keyFile }),
    (e: CaError) => e.code === CA_ERR.BAD_CHAIN && /give --ca-chain with its issuers/.test(e.message),
  );

  const otherRoot = f('other-root.pem', caCert('corp root', await generateForgeKeyPair(), null));
  await assert.rejects(
    CertificateAuthority.create({ certFile, keyFile, chainFile: otherRoot }),
    (e: CaError) => e.code === CA_ERR.BAD_CHAIN && /signature on certificate 0 does not verify/.test(e.message),
  );

  const leafAsCa = f('not-ca.pem', caCert('not a ca', interKey, { cn: 'corp root', key: rootKey }, false));
  await assert.rejects(CertificateAuthority.create({ certFile: leafAsCa, keyFile, chainFile }), (e: CaError) => e.code === CA_ERR.BAD_CA_CERT && /not a CA/.test(e.message));

  await assert.rejects(CertificateAuthority.create({ certFile }), (e: CaError) => e.code === CA_ERR.CONFIG);
  await assert.rejects(CertificateAuthority.create({ certFile: path.join(tmp, 'absent.pem'), keyFile }), (e: CaError) => e.code === CA_ERR.FILE);
});
