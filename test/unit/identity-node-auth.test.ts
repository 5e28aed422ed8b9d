// Node authentication (token file, Kubernetes TokenReview with a fake reviewer) and node authorization decisions.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { authorizeNode } from '../../src/controlplane/ca/authorize';
import { CaRefusal } from '../../src/controlplane/ca/errors';
import { KubernetesNodeAuthenticator, TokenFileAuthenticator, type TokenReviewResult } from '../../src/controlplane/ca/node-auth';
import type { PodObject } from '../../src/controlplane/objects';
import { silentLogger } from '../../src/telemetry/logger';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-nodeauth-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function pod(name: string, node: string | undefined, sa: string, ns = 'default', extra: Partial<PodObject> = {}): PodObject {
  return {
    kind: 'Pod',
    meta: { name, namespace: ns, uid: `uid-${name}`, labels: {}, annotations: {} },
    nodeName: node,
    serviceAccount: sa,
    containers: [],
    ready: true,
    inMesh: true,
    ...extra,
  };
}

function md(token?: string): grpc.Metadata {
  const m = new grpc.Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  return m;
}

async function refused(p: Promise<unknown>): Promise<CaRefusal> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CaRefusal, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

const ID = 'spiffe://cluster.local/ns/default/sa/client';
const IDENT = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'client' };

test('authorization: only a node that runs a pod with the identity gets it; refusals say what to check', () => {
  const pods = [pod('c1', 'node-a', 'client'), pod('s1', 'node-b', 'server'), pod('old', 'node-c', 'client', 'default', { phase: 'Succeeded' })];
  assert.deepEqual(authorizeNode(pods, 'node-a', IDENT, ID), ['default/c1']);

  const b = (() => {
    try {
      authorizeNode(pods, 'node-b', IDENT, ID);
    } catch (err) {
      return err as CaRefusal;
    }
    assert.fail('node-b must be refused');
  })();
  assert.equal(b.status, grpc.status.PERMISSION_DENIED);
  assert.equal(b.reason, 'not_scheduled');
  assert.equal(
    b.message,
    `node node-b asked for ${ID} but no pod with that service account is scheduled on node-b: pods with it are on node-a, node-c (check the pod's spec.nodeName and which node's agent is asking)`,
  );

  assert.throws(() => authorizeNode(pods, 'node-c', IDENT, ID), /its pods on node-c have finished \(old: Succeeded\)/);
  const other = { ...IDENT, namespace: 'prod' };
  assert.throws(
    () => authorizeNode(pods, 'node-a', other, 'spiffe://cluster.local/ns/prod/sa/client'),
    /no pod in namespace prod uses service account client \(check the pod's namespace and spec.serviceAccountName\)/,
  );
});

test('token file: known token -> its node; unknown or missing -> UNAUTHENTICATED; edits are picked up; a bad edit keeps the last good', async () => {
  const file = path.join(tmp, 'tokens.json');
  fs.writeFileSync(file, JSON.stringify({ 'node-a': 'a'.repeat(32), 'node-b': 'b'.repeat(32) }));
  const auth = new TokenFileAuthenticator(file, silentLogger());
  assert.deepEqual(await auth.authenticate(md('a'.repeat(32))), { node: 'node-a', via: 'token-file' });
  assert.equal((await auth.authenticate(md('b'.repeat(32)))).node, 'node-b');

  const unknown = await refused(auth.authenticate(md('c'.repeat(32))));
  assert.equal(unknown.status, grpc.status.UNAUTHENTICATED);
  assert.match(unknown.message, /not in .*tokens.json; check the agent's --ca-token-file/);
  assert.match((await refused(auth.authenticate(md()))).message, /no node credential: send "authorization: Bearer <node token>"/);

  fs.writeFileSync(file, JSON.stringify({ 'node-a': 'a'.repeat(32), 'node-b': 'b'.repeat(32), 'node-c': 'c'.repeat(40) }));
  assert.equal((await auth.authenticate(md('c'.repeat(40)))).node, 'node-c');

  fs.writeFileSync(file, '{ not json');
  assert.equal((await auth.authenticate(md('c'.repeat(40)))).node, 'node-c', 'a broken edit keeps the previous tokens');

  fs.writeFileSync(path.join(tmp, 'short.json'), JSON.stringify({ 'node-a': 'short' }));
  assert.throws(() => new TokenFileAuthenticator(path.join(tmp, 'short.json'), silentLogger()), /at least 16 characters/);
});

test('Kubernetes: the agent ServiceAccount token bound to a pod gives that pod\'s node; everything else is refused', async () => {
  const agentPod = pod('nodemesh-agent-x1', 'node-a', 'nodemesh-agent', 'nodemesh-system');
  const good: TokenReviewResult = {
    authenticated: true,
    username: 'system:serviceaccount:nodemesh-system:nodemesh-agent',
    audiences: ['nodemesh-ca'],
    extra: { 'authentication.kubernetes.io/pod-name': ['nodemesh-agent-x1'], 'authentication.kubernetes.io/pod-uid': ['uid-nodemesh-agent-x1'] },
  };
  const reviews: Record<string, TokenReviewResult> = {
    good,
    otherSa: { ...good, username: 'system:serviceaccount:default:client' },
    otherAudience: { ...good, audiences: ['https://kubernetes.default.svc'] },
    unbound: { ...good, extra: {} },
    staleUid: { ...good, extra: { ...good.extra, 'authentication.kubernetes.io/pod-uid': ['uid-old'] } },
    nodeMismatch: { ...good, extra: { ...good.extra, 'authentication.kubernetes.io/node-name': ['node-b'] } },
    unknownPod: { ...good, extra: { 'authentication.kubernetes.io/pod-name': ['gone'], 'authentication.kubernetes.io/node-name': ['node-c'] } },
    rejected: { authenticated: false, error: 'token expired' },
  };
  const calls: { token: string; audiences: string[] }[] = [];
  const auth = new KubernetesNodeAuthenticator({
    reviewer: {
      review: async (token, audiences) => {
        calls.push({ token, audiences });
        return reviews[token]!;
      },
    },
    findPod: (ns, name) => (ns === agentPod.meta.namespace && name === agentPod.meta.name ? agentPod : undefined),
    agentNamespace: 'nodemesh-system',
  });

  assert.deepEqual(await auth.authenticate(md('good')), { node: 'node-a', via: 'kubernetes' });
  await auth.authenticate(md('good'));
  assert.equal(calls.filter((c) => c.token === 'good').length, 1, 'reviews are cached');
  assert.deepEqual(calls[0]!.audiences, ['nodemesh-ca']);

  assert.match((await refused(auth.authenticate(md('otherSa')))).message, /belongs to system:serviceaccount:default:client, not to .*nodemesh-system:nodemesh-agent/);
  assert.match((await refused(auth.authenticate(md('otherAudience')))).message, /not meant for nodemesh-ca/);
  assert.match((await refused(auth.authenticate(md('unbound')))).message, /not bound to a pod/);
  assert.match((await refused(auth.authenticate(md('staleUid')))).message, /uid uid-old, but that pod now has uid/);
  assert.match((await refused(auth.authenticate(md('nodeMismatch')))).message, /says node node-b but the agent pod .* runs on node-a/);
  assert.equal((await auth.authenticate(md('unknownPod'))).node, 'node-c', 'the node-name claim alone is enough when the pod is not listed yet');
  assert.match((await refused(auth.authenticate(md('rejected')))).message, /did not authenticate the token: token expired/);
});
