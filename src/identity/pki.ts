// PKI helpers both sides share, without node-forge (the agent never loads it): async RSA keys and CSRs with
// Node's crypto, PEM bundles, chain checks. The CA's own certificate building is in controlplane/ca.

import { generateKeyPair as nodeGenerateKeyPair, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { ID_ERR, IdentityError } from './errors';

export const DEFAULT_KEY_BITS = 2048;

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** An RSA key pair (e = 65537), made on libuv's thread pool: ~100 ms for 2048 bits, off the event loop. */
export function generateKeyPair(bits = DEFAULT_KEY_BITS): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    nodeGenerateKeyPair('rsa', { modulusLength: bits, publicExponent: 0x10001 }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ publicKey, privateKey }),
    );
  });
}

/** The private key as PEM (PKCS#8), what TLS contexts take. */
export function privateKeyPem(keys: KeyPair): string {
  return keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

// DER (X.690) for the one structure the agent writes: tag, definite length, content.
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const SEQUENCE = 0x30;
const SET = 0x31;
const OCTET_STRING = 0x04;
const BIT_STRING = 0x03;
const CONTEXT_0_CONSTRUCTED = 0xa0;
/** GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String. */
const GENERAL_NAME_URI = 0x86;
const VERSION_1 = Buffer.from([0x02, 0x01, 0x00]);
const EMPTY_NAME = Buffer.from([SEQUENCE, 0x00]);
const OID_EXTENSION_REQUEST = Buffer.from('06092a864886f70d01090e', 'hex'); // 1.2.840.113549.1.9.14 (PKCS#9)
const OID_SUBJECT_ALT_NAME = Buffer.from('0603551d11', 'hex'); // 2.5.29.17
const SHA256_WITH_RSA = Buffer.from('300d06092a864886f70d01010b0500', 'hex'); // 1.2.840.113549.1.1.11, NULL parameters

/**
 * A PKCS#10 request (RFC 2986) with an empty subject and exactly one URI SAN (the SPIFFE ID) in an
 * extensionRequest attribute, signed with SHA-256 RSA (PKCS#1 v1.5): the same DER node-forge writes.
 */
export function createCsr(keys: KeyPair, uri: string): string {
  if (!/^[\x21-\x7e]+$/.test(uri)) throw new Error(`a URI SAN must be printable ASCII without spaces (IA5String): ${JSON.stringify(uri)}`);
  const generalNames = der(SEQUENCE, der(GENERAL_NAME_URI, Buffer.from(uri, 'ascii')));
  const extensions = der(SEQUENCE, der(SEQUENCE, OID_SUBJECT_ALT_NAME, der(OCTET_STRING, generalNames)));
  const attributes = der(CONTEXT_0_CONSTRUCTED, der(SEQUENCE, OID_EXTENSION_REQUEST, der(SET, extensions)));
  const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
  const info = der(SEQUENCE, VERSION_1, EMPTY_NAME, spki, attributes);
  const signature = sign('sha256', info, keys.privateKey);
  const request = der(SEQUENCE, info, SHA256_WITH_RSA, der(BIT_STRING, Buffer.from([0]), signature));
  const b64 = request.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
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
