// The caller's metadata on HBONE CONNECTs: what the source agent writes, and what the destination accepts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPeerMeta, parsePeerMeta } from '../../src/proxy/hbone/peer-meta';
import type { Workload } from '../../src/state/workloads';

const ID = 'spiffe://cluster.local/ns/shop/sa/cart';

function pod(labels: Record<string, string>, workloadName = 'cart-7d9'): Workload {
  return { uid: 'u1', name: 'cart-7d9', namespace: 'shop', serviceAccount: 'cart', ips: ['198.18.1.5'], labels, annotations: {}, workloadName };
}

test('round trip: workload, namespace, app and version as the source agent knows them', () => {
  assert.deepEqual(parsePeerMeta(formatPeerMeta(pod({ app: 'cart', version: 'v2' })), ID), { workload: 'cart-7d9', namespace: 'shop', app: 'cart', version: 'v2' });
  assert.deepEqual(parsePeerMeta(formatPeerMeta(pod({})), ID), { workload: 'cart-7d9', namespace: 'shop', app: null, version: null });
});

test('a label value that is not a Kubernetes label value is left out by the sender', () => {
  assert.equal(formatPeerMeta(pod({ app: 'a;ver=evil', version: 'x'.repeat(64) })), 'ns=shop;wl=cart-7d9');
});

test('refused: another namespace than the certificate says, malformed, duplicate or invalid fields, no identity', () => {
  const ok = 'ns=shop;wl=cart-7d9;app=cart';
  assert.notEqual(parsePeerMeta(ok, ID), null);
  for (const bad of [
    'ns=other;wl=cart-7d9;app=cart',
    'wl=cart-7d9;app=cart',
    'ns=shop;app=cart',
    'ns=shop;wl=cart-7d9;app=cart;app=web',
    'ns=shop;wl=Cart;app=cart',
    'ns=shop;wl=cart-7d9;app=c a r t',
    `ns=shop;wl=cart-7d9;app=${'a'.repeat(64)}`,
    'ns=shop;wl=cart-7d9;=x',
    'ns=shop;wl=cart-7d9;app',
    `ns=shop;wl=${'a'.repeat(1100)}`,
  ]) {
    assert.equal(parsePeerMeta(bad, ID), null, bad);
  }
  assert.equal(parsePeerMeta(ok, null), null, 'a plaintext peer has no certificate to check the namespace against');
  assert.equal(parsePeerMeta(undefined, ID), null);
});
