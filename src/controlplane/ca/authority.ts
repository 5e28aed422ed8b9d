// The CA: a signing certificate + key (a generated root persisted in a directory, or operator files chained to an
// external root) that issues SPIFFE leaf certificates with node-forge.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import forge from 'node-forge';
import { DEFAULT_TRUST_DOMAIN } from '../../identity/types';
import { certInfo, chainProblem, normalizePem, randomSerialHex, splitPemCertificates } from '../../identity/pki';
import { generateForgeKeyPair } from './keys';
import { CA_ERR, CaError } from './errors';

export const DEFAULT_MAX_CERT_TTL_SECONDS = 7 * 24 * 3600;
export const DEFAULT_CERT_TTL_SECONDS = 24 * 3600;
/** notBefore is set this far in the past so a verifier whose clock lags a little still accepts a fresh cert. */
export const DEFAULT_BACKDATE_SECONDS = 30;
const ROOT_TTL_DAYS = 3650;

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';

export interface CaOptions {
  /** Generate a root on first start and keep it here (key 0600); reused on restart. */
  dir?: string;
  /** Operator-provided signing certificate (a root, or an intermediate with `chainFile`). */
  certFile?: string;
  keyFile?: string;
  /** PEM bundle: the issuers of `certFile` up to and including the root (root last). */
  chainFile?: string;
  trustDomain?: string;
  /** Upper bound on issued lifetimes. Default 7 days. */
  maxCertTtlSeconds?: number;
  /** Lifetime when the request does not ask for one. Default 24 h (capped by the maximum). */
  defaultCertTtlSeconds?: number;
  backdateSeconds?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
  /** Signer material already in memory (the CA Secret); takes precedence over files and `dir`. */
  material?: { certPem: string; keyPem: string; issuersPem: string[]; origin: string };
}

export interface IssueRequest {
  publicKey: forge.pki.PublicKey;
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  /** Requested lifetime; 0 or absent: the default. Always capped by the maximum and the signer's own expiry. */
  ttlSeconds?: number;
  /** The CA's own serving certificate: this lifetime exactly (still capped by the signer's expiry), not the workload maximum. */
  servingTtlSeconds?: number;
}

export interface IssuedCertificate {
  certPem: string;
  /** Leaf first, then intermediates, the root last. */
  chain: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

interface Signer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  /** Signer first, root last (a single element when the signer is the root). */
  chain: string[];
  /** Subject key identifier of the signer, for the leaves' authorityKeyIdentifier. */
  ski: string | undefined;
}

function readFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CaError(CA_ERR.FILE, `cannot read the ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Any unencrypted PEM private key Node can read (PKCS#1, PKCS#8), as a forge RSA key. */
function parseRsaKey(pem: string, file: string): forge.pki.rsa.PrivateKey {
  let pkcs1: string;
  try {
    const k = createPrivateKey(pem);
    if (k.asymmetricKeyType !== 'rsa') {
      throw new CaError(CA_ERR.BAD_CA_CERT, `the CA key ${file} is ${k.asymmetricKeyType}; the CA signs with RSA keys only`, {
        hint: 'issue the nodemesh intermediate with an RSA key (2048 bits or more)',
      });
    }
    pkcs1 = k.export({ type: 'pkcs1', format: 'pem' }).toString();
  } catch (err) {
    if (err instanceof CaError) throw err;
    throw new CaError(CA_ERR.FILE, `the CA key ${file} is not an unencrypted PEM private key: ${(err as Error).message}`, { cause: err });
  }
  return forge.pki.privateKeyFromPem(pkcs1) as forge.pki.rsa.PrivateKey;
}

function keyMatches(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): boolean {
  const pub = cert.publicKey as forge.pki.rsa.PublicKey;
  return pub.n.equals(key.n) && pub.e.equals(key.e);
}

function skiOf(cert: forge.pki.Certificate): string | undefined {
  const ext = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  return ext?.subjectKeyIdentifier;
}

/** Checks that `cert` + `key` can sign and that `chain` (issuers, root last) verifies; returns the signer. */
function makeSigner(certPem: string, keyPem: string, issuersPem: string[], where: { cert: string; key: string; chain?: string }, now: number): Signer {
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromPem(certPem);
  } catch (err) {
    throw new CaError(CA_ERR.BAD_CA_CERT, `the CA certificate ${where.cert} cannot be used: ${(err as Error).message}`, {
      hint: 'it must be a PEM X.509 certificate with an RSA key',
      cause: err,
    });
  }
  const key = parseRsaKey(keyPem, where.key);
  if (!keyMatches(cert, key)) {
    throw new CaError(CA_ERR.KEY_MISMATCH, `the CA key ${where.key} does not belong to the CA certificate ${where.cert}`, {
      hint: 'give the private key that was used to request this certificate',
    });
  }
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | undefined;
  if (!bc?.cA) throw new CaError(CA_ERR.BAD_CA_CERT, `the CA certificate ${where.cert} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
  const ku = cert.getExtension('keyUsage') as { keyCertSign?: boolean } | undefined;
  if (ku && !ku.keyCertSign) throw new CaError(CA_ERR.BAD_CA_CERT, `the CA certificate ${where.cert} may not sign certificates (keyUsage lacks keyCertSign)`);
  if (cert.validity.notAfter.getTime() <= now) {
    throw new CaError(CA_ERR.BAD_CA_CERT, `the CA certificate ${where.cert} expired at ${cert.validity.notAfter.toISOString()}`);
  }
  const own = new X509Certificate(certPem);
  // Tolerate a chain file that starts with the signing certificate itself.
  const issuers = issuersPem.filter((p, i) => !(i === 0 && new X509Certificate(p).fingerprint256 === own.fingerprint256));
  const chain = [normalizePem(certPem), ...issuers];
  const problem = chainProblem(chain);
  if (problem) {
    const hint =
      issuers.length === 0
        ? 'this certificate is not a self-signed root: give --ca-chain with its issuers up to the root'
        : `check that ${where.chain} holds the issuers of ${where.cert} in order, root last`;
    throw new CaError(CA_ERR.BAD_CHAIN, `the CA chain does not verify: ${problem}`, { hint });
  }
  for (const [i, p] of chain.entries()) {
    const info = certInfo(p);
    if (info.notAfter.getTime() <= now) throw new CaError(CA_ERR.BAD_CHAIN, `certificate ${i} of the CA chain (${info.subject}) expired at ${info.notAfter.toISOString()}`);
  }
  return { cert, key, chain, ski: skiOf(cert) };
}

export async function generateRoot(trustDomain: string, now: number): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateForgeKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(now - 3600_000);
  cert.validity.notAfter = new Date(now + ROOT_TTL_DAYS * 86400_000);
  const subject = [
    { shortName: 'O', value: trustDomain },
    { shortName: 'CN', value: 'nodemesh root CA' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: normalizePem(forge.pki.certificateToPem(cert)), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** Writes via a temporary file + rename, so a crash never leaves half a key behind. */
function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode); // the umask may have masked bits off
  fs.renameSync(tmp, file);
}

async function loadOrCreateDir(dir: string, trustDomain: string, now: number): Promise<{ signer: Signer; created: boolean }> {
  const certFile = path.join(dir, ROOT_CERT_FILE);
  const keyFile = path.join(dir, ROOT_KEY_FILE);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CaError(CA_ERR.DIR, `cannot create the CA directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const haveCert = fs.existsSync(certFile);
  const haveKey = fs.existsSync(keyFile);
  if (haveCert && haveKey) {
    const signer = makeSigner(readFile(certFile, 'CA certificate'), readFile(keyFile, 'CA key'), [], { cert: certFile, key: keyFile }, now);
    return { signer, created: false };
  }
  if (haveCert || haveKey) {
    throw new CaError(CA_ERR.DIR, `the CA directory ${dir} has ${haveCert ? ROOT_CERT_FILE : ROOT_KEY_FILE} but not ${haveCert ? ROOT_KEY_FILE : ROOT_CERT_FILE}`, {
      hint: 'restore the missing file; remove both only if every workload may get a new root',
    });
  }
  const { certPem, keyPem } = await generateRoot(trustDomain, now);
  try {
    writeAtomic(keyFile, keyPem, 0o600);
    writeAtomic(certFile, certPem, 0o644);
  } catch (err) {
    throw new CaError(CA_ERR.DIR, `cannot write the CA root into ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return { signer: makeSigner(certPem, keyPem, [], { cert: certFile, key: keyFile }, now), created: true };
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly maxTtlSeconds: number;
  readonly defaultTtlSeconds: number;
  /** Where the signer came from, for logs: `generated DIR`, `loaded DIR`, `files CERT`, `memory`. */
  readonly origin: string;
  private readonly backdateMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly signer: Signer,
    opts: CaOptions,
    origin: string,
  ) {
    this.trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.maxTtlSeconds = opts.maxCertTtlSeconds ?? DEFAULT_MAX_CERT_TTL_SECONDS;
    this.defaultTtlSeconds = Math.min(opts.defaultCertTtlSeconds ?? DEFAULT_CERT_TTL_SECONDS, this.maxTtlSeconds);
    this.backdateMs = (opts.backdateSeconds ?? DEFAULT_BACKDATE_SECONDS) * 1000;
    this.now = opts.now ?? Date.now;
    this.origin = origin;
  }

  /**
   * Operator files when `certFile` is set, else the root in `dir` (generated on first use), else a root that
   * lives only in memory (tests: every restart is a new trust root).
   */
  static async create(opts: CaOptions): Promise<CertificateAuthority> {
    const now = (opts.now ?? Date.now)();
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    if (opts.maxCertTtlSeconds !== undefined && !(opts.maxCertTtlSeconds >= 1)) {
      throw new CaError(CA_ERR.CONFIG, `the maximum certificate lifetime must be at least 1 second (got ${opts.maxCertTtlSeconds})`);
    }
    if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) {
      throw new CaError(CA_ERR.CONFIG, 'give both --ca-cert and --ca-key, or neither');
    }
    if (opts.chainFile !== undefined && opts.certFile === undefined) throw new CaError(CA_ERR.CONFIG, '--ca-chain needs --ca-cert and --ca-key');
    if (opts.material) {
      const m = opts.material;
      const signer = makeSigner(m.certPem, m.keyPem, m.issuersPem, { cert: `${m.origin} ca-cert.pem`, key: `${m.origin} ca-key.pem`, chain: `${m.origin} cert-chain.pem` }, now);
      return new CertificateAuthority(signer, opts, m.origin);
    }
    if (opts.certFile !== undefined && opts.keyFile !== undefined) {
      const issuers = opts.chainFile === undefined ? [] : splitPemCertificates(readFile(opts.chainFile, 'CA chain'));
      if (opts.chainFile !== undefined && issuers.length === 0) throw new CaError(CA_ERR.FILE, `the CA chain ${opts.chainFile} holds no PEM certificate`);
      const signer = makeSigner(
        readFile(opts.certFile, 'CA certificate'),
        readFile(opts.keyFile, 'CA key'),
        issuers,
        { cert: opts.certFile, key: opts.keyFile, chain: opts.chainFile },
        now,
      );
      return new CertificateAuthority(signer, opts, `files ${opts.certFile}`);
    }
    if (opts.dir !== undefined) {
      const { signer, created } = await loadOrCreateDir(opts.dir, trustDomain, now);
      return new CertificateAuthority(signer, opts, `${created ? 'generated' : 'loaded'} ${opts.dir}`);
    }
    const { certPem, keyPem } = await generateRoot(trustDomain, now);
    return new CertificateAuthority(makeSigner(certPem, keyPem, [], { cert: '(memory)', key: '(memory)' }, now), opts, 'memory');
  }

  /** The trust anchor agents verify peers with (the last certificate of the chain). */
  get rootPem(): string {
    return this.signer.chain[this.signer.chain.length - 1]!;
  }

  /** The signing certificate, then its issuers, root last. */
  get caChain(): string[] {
    return [...this.signer.chain];
  }

  /** Lifetime actually granted for a request of `requested` seconds (0: the default). */
  grantedTtlSeconds(requested: number): number {
    const want = requested > 0 ? requested : this.defaultTtlSeconds;
    return Math.min(want, this.maxTtlSeconds);
  }

  /** A leaf for `req.publicKey` with exactly the given SANs; keyUsage and extKeyUsage fit both TLS ends. */
  issue(req: IssueRequest): IssuedCertificate {
    const now = this.now();
    const ttlMs = (req.servingTtlSeconds ?? this.grantedTtlSeconds(req.ttlSeconds ?? 0)) * 1000;
    const notAfter = Math.min(now + ttlMs, this.signer.cert.validity.notAfter.getTime());
    const cert = forge.pki.createCertificate();
    cert.publicKey = req.publicKey;
    cert.serialNumber = randomSerialHex();
    cert.validity.notBefore = new Date(now - this.backdateMs);
    cert.validity.notAfter = new Date(notAfter);
    // SPIFFE leaves carry no subject; the SAN is then critical (RFC 5280 4.2.1.6).
    cert.setSubject([]);
    cert.setIssuer(this.signer.cert.subject.attributes);
    const altNames = [
      ...(req.uris ?? []).map((value) => ({ type: 6, value })),
      ...(req.dnsNames ?? []).map((value) => ({ type: 2, value })),
      ...(req.ips ?? []).map((ip) => ({ type: 7, ip })),
    ];
    const extensions: object[] = [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames, critical: true },
    ];
    if (this.signer.ski) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(this.signer.ski) });
    cert.setExtensions(extensions);
    cert.sign(this.signer.key, forge.md.sha256.create());
    const certPem = normalizePem(forge.pki.certificateToPem(cert));
    const info = certInfo(certPem);
    return { certPem, chain: [certPem, ...this.signer.chain], serial: info.serial, notBefore: info.notBefore, notAfter: info.notAfter };
  }
}
