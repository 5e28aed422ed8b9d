// A small node-forge CA for tests: a root (optionally an intermediate) issuing SPIFFE leaf certificates, with expired variants.

import crypto from 'node:crypto';
import forge from 'node-forge';
import type { CertBundle } from '../../src/identity/types';

export interface IssueOptions {
  /** The leaf's SPIFFE ID; its single URI SAN. */
  spiffeId: string;
  /** Replace the URI SANs (e.g. none, or two) to build malformed identities. */
  uris?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

export interface TestCa {
  rootPem: string;
  /** Leaf certificate, chained (leaf, intermediate if any) and trusting this CA's root. */
  issue(opts: IssueOptions): CertBundle;
  /** A leaf that expired an hour ago. */
  issueExpired(spiffeId: string): CertBundle;
}

function keyPair(): forge.pki.rsa.KeyPair {
  // Node's native keygen: forge's pure-JS RSA keygen takes seconds on a busy machine.
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e) };
}

function serial(): string {
  // Positive, 16 bytes, hex: the high bit cleared so DER does not read it as negative, and never a leading
  // zero byte, which DER drops (the certificate's serial would then differ from the one we asked for).
  const b = crypto.randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

interface Issuer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

function caCert(cn: string, keys: forge.pki.rsa.KeyPair, issuer: Issuer | null): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: 'organizationName', value: 'nodemesh test' }, { name: 'commonName', value: cn }];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(issuer ? issuer.key : keys.privateKey, forge.md.sha256.create());
  return cert;
}

/** A fresh CA. `intermediate: true` signs leaves with an intermediate that bundles carry in their chain. */
export function createTestCa(opts: { name?: string; intermediate?: boolean } = {}): TestCa {
  const name = opts.name ?? 'nodemesh test root';
  const rootKeys = keyPair();
  const root: Issuer = { cert: caCert(name, rootKeys, null), key: rootKeys.privateKey };
  let signer = root;
  const chainTail: string[] = [];
  if (opts.intermediate) {
    const k = keyPair();
    signer = { cert: caCert(`${name} intermediate`, k, root), key: k.privateKey };
    chainTail.push(forge.pki.certificateToPem(signer.cert));
  }
  return caFrom(root, signer, chainTail);
}

/** A TestCa signing with an existing root (e.g. the lab control plane's), for certificates that root would never issue. */
export function testCaFromRoot(certPem: string, keyPem: string): TestCa {
  const root: Issuer = { cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey };
  return caFrom(root, root, []);
}

function caFrom(root: Issuer, signer: Issuer, chainTail: string[]): TestCa {
  const rootPem = forge.pki.certificateToPem(root.cert);

  const issue = (o: IssueOptions): CertBundle => {
    const keys = keyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
    cert.validity.notAfter = o.notAfter ?? new Date(Date.now() + 3600_000);
    cert.setSubject([{ name: 'organizationName', value: 'cluster.local' }]);
    cert.setIssuer(signer.cert.subject.attributes);
    const uris = o.uris ?? [o.spiffeId];
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      ...(uris.length ? [{ name: 'subjectAltName', critical: true, altNames: uris.map((value) => ({ type: 6, value })) }] : []),
      { name: 'authorityKeyIdentifier', keyIdentifier: signer.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(signer.key, forge.md.sha256.create());
    return {
      spiffeId: o.spiffeId,
      keyPem: forge.pki.privateKeyToPem(keys.privateKey),
      chainPem: [forge.pki.certificateToPem(cert), ...chainTail],
      rootsPem: [rootPem],
      serial: cert.serialNumber,
      notBefore: cert.validity.notBefore,
      notAfter: cert.validity.notAfter,
    };
  };

  return {
    rootPem,
    issue,
    issueExpired: (spiffeId) =>
      issue({ spiffeId, notBefore: new Date(Date.now() - 2 * 3600_000), notAfter: new Date(Date.now() - 3600_000) }),
  };
}
