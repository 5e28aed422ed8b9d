// SecretManager with a fake clock and an in-process CA: rotation scheduling, backoff that keeps the old cert, expiry,
// backoff reset when the control plane returns, saved certificates.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../src/controlplane/ca/authority';
import { checkCsr } from '../../src/controlplane/ca/csr';
import type { CertificateIssuer } from '../../src/identity/ca-client';
import { CertDir } from '../../src/identity/cert-store';
import type { Clock } from '../../src/identity/clock';
import { ID_ERR, IdentityError } from '../../src/identity/errors';
import { retryDelay, rotationTime } from '../../src/identity/rotation';
import { SecretManager } from '../../src/identity/secret-manager';
import { silentLogger } from '../../src/telemetry/logger';

const ID = 'spiffe://cluster.local/ns/default/sa/client';

class FakeClock implements Clock {
  private seq = 0;
  private timers: { id: number; at: number; fn: () => void }[] = [];
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
}

/** Waits in real time for async work (key generation runs on the thread pool). */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An in-process CA on the fake clock that can be told to fail. */
class FakeIssuer implements CertificateIssuer {
  failWith: Error | null = null;
  requests = 0;
  constructor(private readonly ca: CertificateAuthority) {}
  async createCertificate(csrPem: string, validitySeconds: number): Promise<string[]> {
    this.requests++;
    if (this.failWith) throw this.failWith;
    const csr = checkCsr(csrPem, 'cluster.local');
    return this.ca.issue({ publicKey: csr.publicKey, uris: [csr.spiffeId], ttlSeconds: validitySeconds }).chain;
  }
  close(): void {}
}

const T0 = Date.UTC(2031, 5, 1, 0, 0, 0);
let clock: FakeClock;
let ca: CertificateAuthority;

before(async () => {
  clock = new FakeClock(T0);
  ca = await CertificateAuthority.create({ backdateSeconds: 30, now: () => clock.now() });
});

test('rotation time: 45-55% of the lifetime counted from receipt, not from the backdated notBefore; backoff doubles to a cap', () => {
  const now = 1_000_000;
  assert.equal(rotationTime(now, now - 30_000, now + 100_000, 0), now + 45_000);
  assert.equal(rotationTime(now, now - 30_000, now + 100_000, 1), now + 55_000);
  assert.equal(rotationTime(now, now - 30_000, now + 100, 0), now + 250, 'never sooner than the minimum');
  assert.deepEqual([1, 2, 3, 10].map((a) => retryDelay(a, 1)), [1000, 2000, 4000, 60_000]);
  assert.equal(retryDelay(1, 0), 500);
});

test('fetched on first acquire, rotated at half life with jitter, new key and serial each time', async () => {
  const issuer = new FakeIssuer(ca);
  const registry = new Registry();
  const sm = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, registry });
  const rotated: string[] = [];
  sm.onRotate((id, b) => rotated.push(`${id} ${b.serial}`));
  sm.acquire(ID);
  sm.acquire(ID);
  assert.equal(sm.status()[0]!.state, 'pending');
  assert.equal(sm.status()[0]!.pods, 2);
  const waiting = sm.certFor(ID);
  clock.advance(0);
  const first = await waiting;
  assert.equal(first.spiffeId, ID);
  assert.equal(first.notAfter.getTime(), clock.now() + 100_000);
  assert.deepEqual(sm.trustBundle(), [ca.rootPem]);
  const s = sm.status()[0]!;
  assert.equal(s.state, 'valid');
  assert.equal(s.serial, first.serial);
  assert.equal(s.nextRotation, new Date(clock.now() + 50_000).toISOString(), 'random 0.5 -> 50% of 100 s');

  clock.advance(49_999);
  assert.equal(issuer.requests, 1);
  clock.advance(1);
  await until(() => sm.current(ID)?.serial !== first.serial, 'the rotated certificate');
  const second = sm.current(ID)!;
  assert.notEqual(second.keyPem, first.keyPem, 'a new key per rotation');
  assert.equal(rotated.length, 2);
  assert.match(await registry.getSingleMetricAsString('nodemesh_identity_certificate_requests_total'), /result="issued"} 2/);

  sm.release(ID);
  assert.equal(sm.status()[0]!.pods, 1);
  sm.release(ID);
  assert.deepEqual(sm.status(), []);
  await assert.rejects(sm.certFor(ID), (e: IdentityError) => e.code === ID_ERR.NOT_MANAGED);
  assert.throws(() => sm.acquire('spiffe://other.domain/ns/a/sa/b'), /trust domain other.domain, this agent serves cluster.local/);
  sm.close();
});

test('a failing CA: the old cert stays in use while it is valid (state rotating, backoff), then failed; recovery rotates', async () => {
  const issuer = new FakeIssuer(ca);
  const sm = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 1, keyBits: 1024 });
  sm.acquire(ID);
  clock.advance(0);
  const first = await sm.certFor(ID);
  const start = clock.now();

  issuer.failWith = new IdentityError(ID_ERR.CA_REQUEST, 'cannot get a certificate from the CA at unix:///x: UNAVAILABLE');
  clock.advance(55_000); // random 1 -> 55%
  await until(() => sm.status()[0]!.lastError !== null, 'the first failure');
  let s = sm.status()[0]!;
  assert.equal(s.state, 'rotating');
  assert.equal(s.serial, first.serial);
  assert.match(s.lastError!, /UNAVAILABLE/);
  assert.equal(s.nextRotation, new Date(clock.now() + 1000).toISOString(), 'first retry after 1 s');
  assert.equal(sm.current(ID)?.serial, first.serial, 'the old certificate is still served');
  assert.equal((await sm.certFor(ID)).serial, first.serial);

  // Retries at 1, 2, 4, 8, 16 s ... until the old one runs out.
  const before = issuer.requests;
  clock.advance(1000);
  await until(() => issuer.requests === before + 1 && sm.status()[0]!.nextRotation === new Date(clock.now() + 2000).toISOString(), 'the second attempt');
  clock.advance(2000);
  await until(() => issuer.requests === before + 2 && sm.status()[0]!.nextRotation === new Date(clock.now() + 4000).toISOString(), 'the third attempt');

  clock.advance(start + 100_000 - clock.now());
  s = sm.status()[0]!;
  assert.equal(s.state, 'failed');
  assert.equal(sm.current(ID), null, 'an expired certificate is never handed out');
  await assert.rejects(sm.certFor(ID), /UNAVAILABLE/);

  issuer.failWith = null;
  clock.advance(60_000);
  await until(() => sm.status()[0]!.state === 'valid', 'recovery');
  assert.notEqual(sm.current(ID)!.serial, first.serial);
  assert.equal(sm.status()[0]!.lastError, null);
  sm.close();
});

test('a refusal before any certificate: state failed, waiters rejected with the CA\'s reason, retries continue', async () => {
  const issuer = new FakeIssuer(ca);
  issuer.failWith = new IdentityError(ID_ERR.CA_DENIED, 'the CA refused: node node-b asked for ' + ID + ' but no pod with that service account is scheduled on node-b');
  const sm = new SecretManager({ issuer, log: silentLogger(), clock, random: () => 0, keyBits: 1024 });
  sm.acquire(ID);
  const waiting = sm.certFor(ID);
  clock.advance(0);
  await assert.rejects(waiting, (e: IdentityError) => e.code === ID_ERR.CA_DENIED && /scheduled on node-b/.test(e.message));
  assert.equal(sm.status()[0]!.state, 'failed');
  await assert.rejects(sm.certFor(ID), /scheduled on node-b/);
  clock.advance(500);
  await until(() => issuer.requests === 2, 'a retry');
  sm.close();
});

test('the control plane back (retryNow): a request backing off goes out within the jitter, and its backoff starts over', async () => {
  const issuer = new FakeIssuer(ca);
  issuer.failWith = new IdentityError(ID_ERR.CA_REQUEST, 'cannot get a certificate from the CA at unix:///x: UNAVAILABLE');
  const sm = new SecretManager({ issuer, log: silentLogger(), clock, random: () => 1, keyBits: 1024 });
  sm.acquire(ID);
  const waiting = sm.certFor(ID);
  clock.advance(0);
  await assert.rejects(waiting, /UNAVAILABLE/);
  // Five failures in a row: the next attempt is 32 s away.
  for (const wait of [1000, 2000, 4000, 8000]) {
    const n = issuer.requests;
    clock.advance(wait);
    await until(() => issuer.requests === n + 1 && sm.status()[0]!.nextRotation === new Date(clock.now() + wait * 2).toISOString(), `the attempt after ${wait} ms`);
  }
  assert.equal(sm.status()[0]!.nextRotation, new Date(clock.now() + 16_000).toISOString());

  issuer.failWith = null;
  const n = issuer.requests;
  sm.retryNow(1000);
  assert.equal(sm.status()[0]!.nextRotation, new Date(clock.now() + 1000).toISOString(), 'within the jitter (random 1 -> all of it)');
  clock.advance(1000);
  await until(() => sm.status()[0]!.state === 'valid', 'the certificate right after the control plane came back');
  assert.equal(issuer.requests, n + 1);

  // A later failure backs off from the start again, not from 32 s.
  issuer.failWith = new IdentityError(ID_ERR.CA_REQUEST, 'UNAVAILABLE again');
  const v = sm.current(ID)!;
  clock.advance(Math.ceil((v.notAfter.getTime() - clock.now()) * 0.6)); // past the rotation at 55% (random 1)
  await until(() => sm.status()[0]!.lastError !== null, 'a failed rotation');
  assert.equal(sm.status()[0]!.nextRotation, new Date(clock.now() + 1000).toISOString(), 'first retry after 1 s');
  sm.retryNow(1000);
  sm.close();
});

test('saved certificates: a new manager presents a saved, valid one without the CA and rotates it on its first schedule; unsafe files are refused', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-certs-'));
  const store = new CertDir(path.join(dir, 'certs'));
  const issuer = new FakeIssuer(ca);
  const first = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  first.acquire(ID);
  clock.advance(0);
  const issued = await first.certFor(ID);
  const file = path.join(dir, 'certs', fs.readdirSync(path.join(dir, 'certs'))[0]!);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the key file is root-only');
  assert.equal(fs.statSync(path.join(dir, 'certs')).mode & 0o777, 0o700);
  first.close();
  assert.ok(fs.existsSync(file), 'closing (agent exit) keeps the saved certificate for the next agent');

  // The CA is down; 20 s later a restarted agent asks for the same identity.
  clock.advance(20_000);
  issuer.failWith = new IdentityError(ID_ERR.CA_REQUEST, 'UNAVAILABLE');
  const requests = issuer.requests;
  const restarted = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  const announced: string[] = [];
  restarted.onRotate((_id, b) => announced.push(b.serial));
  restarted.acquire(ID);
  assert.equal(restarted.current(ID)?.serial, issued.serial, 'the saved certificate is presented at once');
  assert.equal((await restarted.certFor(ID)).keyPem, issued.keyPem);
  assert.deepEqual(announced, [issued.serial], 'listeners hear of it like an issuance');
  assert.equal(issuer.requests, requests, 'no request to the CA');
  assert.equal(restarted.status()[0]!.nextRotation, new Date(issued.notBefore.getTime() + 0.5 * (issued.notAfter.getTime() - issued.notBefore.getTime())).toISOString(), 'rotation stays on the original schedule');
  restarted.close();

  // A key file others could read is not used.
  fs.chmodSync(file, 0o644);
  const careful = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  careful.acquire(ID);
  assert.equal(careful.current(ID), null, 'a key that may have leaked is not presented');
  careful.close();
  fs.chmodSync(file, 0o600);

  // Past its expiry (minus a margin) a saved certificate is not used either.
  clock.advance(issued.notAfter.getTime() - clock.now() - 10_000);
  const late = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  late.acquire(ID);
  assert.equal(late.current(ID), null);
  late.close();

  // The last pod of the identity leaving removes its key; a manager that handed over writes nothing.
  issuer.failWith = null;
  const owner = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  owner.acquire(ID);
  clock.advance(0);
  const fresh = await owner.certFor(ID);
  assert.equal(store.load(ID)?.keyPem, fresh.keyPem, 'a new issuance replaces the saved one');
  owner.stopPersisting();
  owner.release(ID);
  assert.ok(store.load(ID), 'after a handover the successor owns the saved certificates');
  owner.close();
  const leaving = new SecretManager({ issuer, validitySeconds: 100, log: silentLogger(), clock, random: () => 0.5, keyBits: 1024, store });
  leaving.acquire(ID);
  leaving.release(ID);
  assert.equal(store.load(ID), null, 'no local pod holds the identity any more: its key is gone from the node');
  leaving.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
