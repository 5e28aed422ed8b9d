// PKI helpers both sides share: async RSA keys (native crypto through node-forge), CSRs, PEM bundles, chain checks.

import { randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { ID_ERR, IdentityError } from './errors';

export const DEFAULT_KEY_BITS = 2048;

/**
 * An RSA key pair. node-forge hands the work to Node's `crypto.generateKeyPair` when it can (off the event loop,
 * ~100 ms for 2048 bits); forcing pure JavaScript would block the loop for seconds, so we refuse that setup.
 */
export function generateKeyPair(bits = DEFAULT_KEY_BITS): Promise<forge.pki.rsa.KeyPair> {
  if ((forge as unknown as { options?: { usePureJavaScript?: boolean } }).options?.usePureJavaScript) {
    return Promise.reject(new Error('node-forge is set to pure JavaScript; key generation would block the event loop'));
  }
  return new Promise((resolve, reject) => {
    forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 }, (err, keypair) => (err ? reject(err) : resolve(keypair)));
  });
}

/** A PKCS#10 request with an empty subject and exactly one URI SAN (the SPIFFE ID), signed with SHA-256. */
export function createCsr(keys: forge.pki.rsa.KeyPair, uri: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: uri }] }] }]);
  csr.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/**
 * A random positive 128-bit serial (RFC 5280 allows up to 20 octets), as forge wants it: hex, DER-minimal
 * (a leading 00 only when the top bit is set, never a leading zero byte otherwise).
 */
export function randomSerialHex(): string {
  let b = randomBytes(16);
  while (b[0] === 0) b = randomBytes(16);
  return (b[0]! & 0x80 ? '00' : '') + b.toString('hex');
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** One PEM block with LF line ends and a final newline (forge writes CRLF; files may have either). */
export function normalizePem(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trim()}\n`;
}

/** Every certificate in a PEM bundle, in order, normalised. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERT_RE) ?? []).map(normalizePem);
}

export interface CertInfo {
  /** Upper-case hex, as `openssl x509 -serial` prints it (no leading 00). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** URI SANs. */
  uris: string[];
  subject: string;
  ca: boolean;
}

export function parseCertificate(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new IdentityError(ID_ERR.BAD_PEM, `not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
}

/** URI entries of a `subjectAltName` string as Node prints it (`URI:spiffe://..., DNS:x`). */
export function sanUris(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (!san) return [];
  return san
    .split(/,\s*/)
    .filter((e) => e.startsWith('URI:'))
    .map((e) => e.slice(4));
}

export function certInfo(pem: string | X509Certificate): CertInfo {
  const x = typeof pem === 'string' ? parseCertificate(pem) : pem;
  return {
    serial: x.serialNumber.toUpperCase().replace(/^(00)+(?=.)/, ''),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    uris: sanUris(x),
    subject: x.subject,
    ca: x.ca,
  };
}

/**
 * Checks that each certificate is issued and signed by the next one and that the last is self-signed (a root).
 * Returns null when the chain holds, else what is wrong, naming the certificate by position.
 */
export function chainProblem(chainPem: string[]): string | null {
  if (chainPem.length === 0) return 'the chain is empty';
  const xs = chainPem.map(parseCertificate);
  for (let i = 0; i + 1 < xs.length; i++) {
    const child = xs[i]!;
    const parent = xs[i + 1]!;
    if (!parent.ca) return `certificate ${i + 1} (${parent.subject || 'no subject'}) is not a CA certificate (basicConstraints CA:FALSE)`;
    if (!child.checkIssued(parent)) return `certificate ${i} (${child.subject || 'no subject'}) was not issued by certificate ${i + 1} (${parent.subject})`;
    if (!child.verify(parent.publicKey)) return `the signature on certificate ${i} does not verify with the key of certificate ${i + 1}`;
  }
  const last = xs[xs.length - 1]!;
  if (!last.checkIssued(last) || !last.verify(last.publicKey)) return `the last certificate (${last.subject}) is not a self-signed root`;
  return null;
}
