// The agent's certificates: one key + chain per local identity, fetched on first use, rotated at half life with
// jitter, retried with backoff while the previous certificate still serves.

import { createPrivateKey, createPublicKey } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger';
import { CaClient, type CertificateIssuer } from './ca-client';
import { CertDir, type CertStore } from './cert-store';
import { runAt, systemClock, type Clock } from './clock';
import { ID_ERR, IdentityError } from './errors';
import { certInfo, chainProblem, createCsr, DEFAULT_KEY_BITS, generateKeyPair, parseCertificate, privateKeyPem, type KeyPair } from './pki';
import { DEFAULT_ROTATION, restoredRotationTime, retryDelay, rotationTime, type RotationPolicy } from './rotation';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId, type CertBundle, type IdentityProvider, type IdentityState, type IdentityStatus } from './types';

export const DEFAULT_CERT_VALIDITY_SECONDS = 24 * 3600;

export interface SecretManagerOptions {
  issuer: CertificateIssuer;
  trustDomain?: string;
  /** Lifetime asked of the CA (it may grant less). Default 24 h. */
  validitySeconds?: number;
  log: Logger;
  registry?: Registry;
  clock?: Clock;
  /** Source of jitter in [0, 1). */
  random?: () => number;
  rotation?: Partial<RotationPolicy>;
  keyBits?: number;
  /**
   * Keeps every issued key and chain (root-only files): the first acquire of an identity presents a saved
   * certificate that is still valid at once, without the CA, and rotates it on its original schedule.
   */
  store?: CertStore;
}

/** A saved certificate this close to expiry is not worth presenting: ask the CA instead. */
const RESTORE_MIN_LEFT_MS = 30_000;

interface Waiter {
  resolve: (b: CertBundle) => void;
  reject: (e: Error) => void;
}

interface Entry {
  id: string;
  pods: number;
  bundle: CertBundle | null;
  state: IdentityState;
  lastError: string | null;
  lastErrorObj: Error | null;
  nextRotation: number | null;
  failures: number;
  inflight: boolean;
  waiters: Waiter[];
  cancelTimer: (() => void) | null;
  cancelExpiry: (() => void) | null;
}

class IdentityMetrics {
  readonly requests: Counter<'result'>;
  readonly expiry: Gauge<'identity'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'nodemesh_identity_certificate_requests_total',
      help: 'Certificate requests sent to the CA, by result (issued/error)',
      labelNames: ['result'],
      registers,
    });
    this.expiry = new Gauge({
      name: 'nodemesh_identity_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the current certificate of each local identity',
      labelNames: ['identity'],
      registers,
    });
    for (const result of ['issued', 'error']) this.requests.inc({ result }, 0);
  }
}

export class SecretManager implements IdentityProvider {
  private readonly entries = new Map<string, Entry>();
  private readonly rotateCallbacks: ((id: string, bundle: CertBundle) => void)[] = [];
  private readonly trustDomain: string;
  private readonly validitySeconds: number;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly policy: RotationPolicy;
  private readonly metrics: IdentityMetrics | undefined;
  private readonly log: Logger;
  private lastRoots: string[] = [];
  private closed = false;
  /** Off once another agent owns the node's saved certificates (this one handed over and drains). */
  private persisting = true;

  constructor(private readonly opts: SecretManagerOptions) {
    this.trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.validitySeconds = opts.validitySeconds ?? DEFAULT_CERT_VALIDITY_SECONDS;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.policy = { ...DEFAULT_ROTATION, ...opts.rotation };
    this.metrics = opts.registry ? new IdentityMetrics(opts.registry) : undefined;
    this.log = opts.log;
  }

  acquire(id: string): void {
    if (this.closed) throw new IdentityError(ID_ERR.NOT_MANAGED, `cannot acquire ${id}: the identity manager is closed`);
    const parsed = parseSpiffeId(id);
    if (!parsed) throw new IdentityError(ID_ERR.BAD_IDENTITY, `${id} is not a SPIFFE workload ID (spiffe://<trust-domain>/ns/<ns>/sa/<sa>)`);
    if (parsed.trustDomain !== this.trustDomain) {
      throw new IdentityError(ID_ERR.BAD_IDENTITY, `${id} is in trust domain ${parsed.trustDomain}, this agent serves ${this.trustDomain}`);
    }
    const e = this.entries.get(id);
    if (e) {
      e.pods++;
      return;
    }
    const entry: Entry = {
      id,
      pods: 1,
      bundle: null,
      state: 'pending',
      lastError: null,
      lastErrorObj: null,
      nextRotation: null,
      failures: 0,
      inflight: false,
      waiters: [],
      cancelTimer: null,
      cancelExpiry: null,
    };
    this.entries.set(id, entry);
    if (this.restore(entry)) return;
    // Fetch from a timer, not inline: acquire() is called from enrollment and must return at once.
    entry.cancelTimer = runAt(this.clock, this.clock.now(), () => void this.fetch(entry));
  }

  /** A saved certificate for `e` that passes the checks an issued one does installs it; anything else is logged and ignored. */
  private restore(e: Entry): boolean {
    const store = this.opts.store;
    if (!store) return false;
    try {
      const saved = store.load(e.id);
      if (!saved) return false;
      const privateKey = createPrivateKey(saved.keyPem);
      const bundle = this.toBundle(e.id, { privateKey, publicKey: createPublicKey(privateKey) }, saved.chain);
      const left = bundle.notAfter.getTime() - this.clock.now();
      if (left < RESTORE_MIN_LEFT_MS) {
        this.log.info({ identity: e.id, notAfter: bundle.notAfter.toISOString() }, 'saved certificate expires too soon to use; asking the CA');
        return false;
      }
      this.installed(e, bundle, 'restored');
      return true;
    } catch (err) {
      this.log.warn({ err, identity: e.id }, `ignoring the saved certificate: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Stops writing (and removing) saved certificates: after a handover the successor agent owns them. Certificates
   * this one still issues stay in memory only.
   */
  stopPersisting(): void {
    this.persisting = false;
  }

  release(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (--e.pods > 0) return;
    this.forget(e, new IdentityError(ID_ERR.NOT_MANAGED, `${id} was released (no local pod holds it any more)`));
  }

  private forget(e: Entry, why: Error): void {
    e.cancelTimer?.();
    e.cancelExpiry?.();
    this.entries.delete(e.id);
    // the last local pod of the identity left: its key has no business on the node any more (not at close:
    // the next agent serves the same pods with it)
    if (!this.closed && this.persisting) this.unsave(e.id);
    this.metrics?.expiry.remove({ identity: e.id });
    for (const w of e.waiters.splice(0)) w.reject(why);
  }

  certFor(id: string): Promise<CertBundle> {
    const e = this.entries.get(id);
    if (!e) {
      return Promise.reject(new IdentityError(ID_ERR.NOT_MANAGED, `no local pod holds ${id}, so this node has no certificate for it`));
    }
    const b = this.current(id);
    if (b) return Promise.resolve(b);
    // No valid certificate and the last attempt failed: say why now rather than hold a connection until the retry.
    if (e.state === 'failed' && e.lastErrorObj) return Promise.reject(e.lastErrorObj);
    return new Promise((resolve, reject) => e.waiters.push({ resolve, reject }));
  }

  current(id: string): CertBundle | null {
    const b = this.entries.get(id)?.bundle;
    return b && b.notAfter.getTime() > this.clock.now() ? b : null;
  }

  trustBundle(): string[] {
    const roots = new Set<string>();
    for (const e of this.entries.values()) for (const r of e.bundle?.rootsPem ?? []) roots.add(r);
    return roots.size > 0 ? [...roots] : [...this.lastRoots];
  }

  onRotate(cb: (id: string, bundle: CertBundle) => void): void {
    this.rotateCallbacks.push(cb);
  }

  status(): IdentityStatus[] {
    return [...this.entries.values()]
      .map((e) => ({
        spiffeId: e.id,
        state: e.state,
        serial: e.bundle?.serial ?? null,
        notAfter: e.bundle?.notAfter.toISOString() ?? null,
        nextRotation: e.nextRotation === null ? null : new Date(e.nextRotation).toISOString(),
        lastError: e.lastError,
        pods: e.pods,
      }))
      .sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
  }

  /**
   * The control plane is reachable again (the xDS stream came up): a request waiting out its backoff after
   * failures is sent now, with at most `jitterMs` of jitter so a control plane's agents do not all ask at
   * once, and its backoff starts again from the beginning. Requests in flight and scheduled rotations stay.
   */
  retryNow(jitterMs = 1000): void {
    if (this.closed) return;
    let n = 0;
    for (const e of this.entries.values()) {
      if (e.failures === 0 || e.inflight) continue;
      e.failures = 0;
      e.cancelTimer?.();
      const at = this.clock.now() + this.random() * jitterMs;
      e.nextRotation = at;
      e.cancelTimer = runAt(this.clock, at, () => void this.fetch(e));
      n++;
    }
    if (n > 0) this.log.info({ identities: n }, 'control plane reachable again: retrying certificate requests now');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of [...this.entries.values()]) this.forget(e, new IdentityError(ID_ERR.NOT_MANAGED, 'the identity manager is closed'));
    this.opts.issuer.close();
  }

  /** One request to the CA with a fresh key. Exactly one is in flight per identity. */
  private async fetch(e: Entry): Promise<void> {
    if (e.inflight || this.entries.get(e.id) !== e) return;
    e.inflight = true;
    e.cancelTimer = null;
    e.nextRotation = null;
    if (e.state === 'valid') e.state = 'rotating';
    let bundle: CertBundle;
    try {
      bundle = await this.issue(e.id);
    } catch (err) {
      e.inflight = false;
      if (this.entries.get(e.id) !== e) return;
      this.failed(e, err as Error);
      return;
    }
    e.inflight = false;
    if (this.entries.get(e.id) !== e) return;
    this.installed(e, bundle);
  }

  private async issue(id: string): Promise<CertBundle> {
    const keys = await generateKeyPair(this.opts.keyBits ?? DEFAULT_KEY_BITS);
    const csr = createCsr(keys, id);
    const chain = await this.opts.issuer.createCertificate(csr, this.validitySeconds);
    return this.toBundle(id, keys, chain);
  }

  /** Checks the CA's answer before anything presents it: our key, our identity, a chain that verifies. */
  private toBundle(id: string, keys: KeyPair, chain: string[]): CertBundle {
    const bad = (what: string): IdentityError => new IdentityError(ID_ERR.BAD_CHAIN, `the CA's answer for ${id} is unusable: ${what}`);
    if (chain.length < 2) throw bad(`expected the leaf and at least the root, got ${chain.length} certificate(s)`);
    const leaf = parseCertificate(chain[0]!);
    const info = certInfo(leaf);
    if (info.uris.length !== 1 || info.uris[0] !== id) throw bad(`the leaf's URI SANs are [${info.uris.join(', ')}]`);
    if (!keys.publicKey.export({ type: 'spki', format: 'der' }).equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))) throw bad('the leaf is not for the key we sent');
    const problem = chainProblem(chain);
    if (problem) throw bad(problem);
    if (info.notAfter.getTime() <= this.clock.now()) throw bad(`the leaf expired at ${info.notAfter.toISOString()} (is this node's clock right?)`);
    return {
      spiffeId: id,
      keyPem: privateKeyPem(keys),
      chainPem: chain.slice(0, -1),
      rootsPem: [chain[chain.length - 1]!],
      serial: info.serial,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
    };
  }

  private save(bundle: CertBundle): void {
    if (!this.opts.store || !this.persisting) return;
    try {
      this.opts.store.save({ spiffeId: bundle.spiffeId, keyPem: bundle.keyPem, chain: [...bundle.chainPem, ...bundle.rootsPem.slice(0, 1)] });
    } catch (err) {
      this.log.error({ err, identity: bundle.spiffeId }, 'cannot save the certificate; a restart without the CA would have to wait for a new one');
    }
  }

  private unsave(id: string): void {
    try {
      this.opts.store?.remove(id);
    } catch (err) {
      this.log.warn({ err, identity: id }, 'cannot remove the saved certificate of an identity no local pod holds');
    }
  }

  private installed(e: Entry, bundle: CertBundle, how: 'issued' | 'restored' = 'issued'): void {
    const now = this.clock.now();
    const previous = e.bundle;
    e.bundle = bundle;
    e.state = 'valid';
    e.lastError = null;
    e.lastErrorObj = null;
    e.failures = 0;
    if (this.lastRoots.length > 0 && this.lastRoots[0] !== bundle.rootsPem[0]) {
      this.log.warn({ identity: e.id }, 'the CA root changed; peers that only trust the old root will refuse this certificate');
    }
    this.lastRoots = bundle.rootsPem;
    const at =
      how === 'restored'
        ? restoredRotationTime(now, bundle.notBefore.getTime(), bundle.notAfter.getTime(), this.random(), this.policy)
        : rotationTime(now, bundle.notBefore.getTime(), bundle.notAfter.getTime(), this.random(), this.policy);
    e.nextRotation = at;
    e.cancelTimer?.();
    e.cancelTimer = runAt(this.clock, at, () => void this.fetch(e));
    e.cancelExpiry?.();
    e.cancelExpiry = runAt(this.clock, bundle.notAfter.getTime(), () => this.expired(e, bundle));
    if (how === 'issued') {
      this.metrics?.requests.inc({ result: 'issued' });
      this.save(bundle);
    }
    this.metrics?.expiry.set({ identity: e.id }, bundle.notAfter.getTime() / 1000);
    this.log.info(
      { identity: e.id, serial: bundle.serial, previousSerial: previous?.serial, notAfter: bundle.notAfter.toISOString(), nextRotation: new Date(at).toISOString() },
      how === 'restored' ? 'saved certificate restored' : previous ? 'certificate rotated' : 'certificate issued',
    );
    for (const w of e.waiters.splice(0)) w.resolve(bundle);
    for (const cb of this.rotateCallbacks) {
      try {
        cb(e.id, bundle);
      } catch (err) {
        this.log.error({ err, identity: e.id }, 'a certificate rotation listener failed');
      }
    }
  }

  private failed(e: Entry, err: Error): void {
    e.failures++;
    e.lastError = err.message;
    e.lastErrorObj = err instanceof IdentityError ? err : new IdentityError(ID_ERR.CA_REQUEST, `cannot get a certificate for ${e.id}: ${err.message}`, { cause: err });
    const stillValid = e.bundle !== null && e.bundle.notAfter.getTime() > this.clock.now();
    e.state = stillValid ? 'rotating' : 'failed';
    const delay = retryDelay(e.failures, this.random(), this.policy);
    const at = this.clock.now() + delay;
    e.nextRotation = at;
    e.cancelTimer?.();
    e.cancelTimer = runAt(this.clock, at, () => void this.fetch(e));
    this.metrics?.requests.inc({ result: 'error' });
    this.log.warn(
      { identity: e.id, failures: e.failures, retryInMs: Math.round(delay), keeping: stillValid ? e.bundle!.serial : undefined, code: (err as { code?: string }).code },
      `certificate request failed: ${err.message}`,
    );
    if (!stillValid) for (const w of e.waiters.splice(0)) w.reject(e.lastErrorObj);
  }

  private expired(e: Entry, bundle: CertBundle): void {
    if (this.entries.get(e.id) !== e || e.bundle !== bundle) return;
    e.cancelExpiry = null;
    e.state = 'failed';
    if (!e.lastErrorObj) {
      e.lastErrorObj = new IdentityError(ID_ERR.CA_REQUEST, `certificate ${bundle.serial} for ${e.id} expired at ${bundle.notAfter.toISOString()} before a new one was issued`);
      e.lastError = e.lastErrorObj.message;
    }
    this.log.error({ identity: e.id, serial: bundle.serial, lastError: e.lastError }, 'certificate expired without a replacement');
  }
}

export interface CreateSecretManagerOptions {
  /** The CA: `unix:///path` or `host:port` (the agent's xDS address). */
  caAddress: string;
  /** The node's bearer token, read at every request. */
  tokenFile?: string;
  /** Verify the CA's TLS listener with this root file; plaintext when absent. */
  caRootFile?: string;
  caServerName?: string;
  trustDomain?: string;
  validitySeconds?: number;
  log: Logger;
  registry?: Registry;
  /** Wall clock (ms) only; timers stay real. Use `clock` to fake both. */
  now?: () => number;
  clock?: Clock;
  random?: () => number;
  rotation?: Partial<RotationPolicy>;
  /** Directory for saved certificates (the agent's STATE_DIR/certs); none: in memory only. */
  certDir?: string;
}

/** A SecretManager that talks to the control plane's CA. */
export function createSecretManager(o: CreateSecretManagerOptions): SecretManager {
  const issuer = new CaClient({ address: o.caAddress, tokenFile: o.tokenFile, tlsRootFile: o.caRootFile, tlsServerName: o.caServerName });
  const clock = o.clock ?? (o.now ? { ...systemClock, now: o.now } : systemClock);
  return new SecretManager({
    issuer,
    trustDomain: o.trustDomain,
    validitySeconds: o.validitySeconds,
    log: o.log,
    registry: o.registry,
    clock,
    random: o.random,
    rotation: o.rotation,
    store: o.certDir ? new CertDir(o.certDir) : undefined,
  });
}
