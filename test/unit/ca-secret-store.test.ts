// The CA in a Secret: generated once, read back by every later start and by a replica that lost the create race;
// an incomplete Secret is refused with what it lacks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CertificateAuthority } from '../../src/controlplane/ca/authority';
import { loadOrCreateCaSecret, type SecretApi } from '../../src/controlplane/ca/secret-store';

class FakeSecrets implements SecretApi {
  readonly store = new Map<string, Record<string, string>>();
  creates = 0;
  /** Simulates another replica creating the Secret between our read and our create. */
  raceWith: Record<string, string> | undefined;
  async read(ns: string, name: string): Promise<Record<string, string> | null> {
    return this.store.get(`${ns}/${name}`) ?? null;
  }
  async create(ns: string, name: string, data: Record<string, string>): Promise<boolean> {
    this.creates++;
    if (this.raceWith) {
      this.store.set(`${ns}/${name}`, this.raceWith);
      return false;
    }
    if (this.store.has(`${ns}/${name}`)) return false;
    this.store.set(`${ns}/${name}`, data);
    return true;
  }
}

test('first start generates and stores a root; the next start (another replica) signs with the same one', async () => {
  const api = new FakeSecrets();
  const first = await loadOrCreateCaSecret(api, 'nodemesh-system', 'cacerts', 'cluster.local');
  assert.equal(first.created, true);
  assert.deepEqual(Object.keys(api.store.get('nodemesh-system/cacerts')!).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
  const second = await loadOrCreateCaSecret(api, 'nodemesh-system', 'cacerts', 'cluster.local');
  assert.equal(second.created, false);
  const a = await CertificateAuthority.create({ material: first });
  const b = await CertificateAuthority.create({ material: second });
  assert.equal(a.rootPem, b.rootPem);
  assert.equal(api.creates, 1);
});

test('a replica that loses the create race uses the winner\'s root', async () => {
  const winner = new FakeSecrets();
  await loadOrCreateCaSecret(winner, 'ns', 'cacerts', 'cluster.local');
  const api = new FakeSecrets();
  api.raceWith = winner.store.get('ns/cacerts');
  const m = await loadOrCreateCaSecret(api, 'ns', 'cacerts', 'cluster.local');
  assert.equal(m.created, false);
  const ca = await CertificateAuthority.create({ material: m });
  assert.equal(ca.rootPem, Buffer.from(api.raceWith!['root-cert.pem']!, 'base64').toString());
});

test('a Secret without the key is refused with what to fix', async () => {
  const api = new FakeSecrets();
  api.store.set('ns/cacerts', { 'ca-cert.pem': Buffer.from('x').toString('base64') });
  await assert.rejects(loadOrCreateCaSecret(api, 'ns', 'cacerts', 'cluster.local'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'NM_CA_SECRET');
    assert.match(e.message, /ns\/cacerts lacks ca-key\.pem/);
    return true;
  });
});
