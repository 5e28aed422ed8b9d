// Who is calling: turns a request's `authorization: Bearer <token>` into the name of the node the agent runs on.
//
// Two authenticators sit behind one interface:
//
// - Lab / standalone (`TokenFileAuthenticator`): the control plane is given a JSON file {"node-a": "<token>", ...}
//   (`--node-tokens`); each agent is given its own token. The file is re-read whenever its mtime, size or inode
//   changes, so `lab up` can add nodes without a restart. Tokens are compared as SHA-256 digests with
//   timingSafeEqual, so the comparison time does not leak how much of a guess matched.
//
// - Kubernetes (`KubernetesNodeAuthenticator`): the agent DaemonSet mounts a projected ServiceAccount token with
//   `audience: nodemesh-ca` (short-lived, bound to the agent pod) and sends it as the bearer token. The CA sends it
//   to the API server in a TokenReview with audiences [nodemesh-ca] and accepts it only if
//     1. status.authenticated is true and the audiences include nodemesh-ca (a token minted for another
//        audience, e.g. the API server's, cannot be replayed here);
//     2. the user is system:serviceaccount:<agent namespace>:nodemesh-agent (any other workload's token is
//        refused even though it is valid);
//     3. the token is pod-bound: extra["authentication.kubernetes.io/pod-name"] names the agent pod. The node is
//        that pod's spec.nodeName as the store knows it (the pod's uid must match pod-uid, so a token of a deleted
//        pod whose name was reused does not count). Kubernetes 1.30+ also puts node-name in the token; when both
//        are there they must agree, and node-name alone is enough when the agent pod is not in the store.
//   Results are cached per token digest for a short while, so a node renewing all its identities at once costs
//   one TokenReview. The API call itself sits behind `TokenReviewer`, which tests replace with a fake.

import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../telemetry/logger';
import type { PodObject } from '../objects';
import { CA_ERR, CaError, CaRefusal } from './errors';

export interface NodeCaller {
  node: string;
  /** How the node was established, for logs. */
  via: 'token-file' | 'kubernetes';
}

/** Resolves a caller to its node, or rejects with a CaRefusal (UNAUTHENTICATED). Never resolves for an unknown caller. */
export interface NodeAuthenticator {
  authenticate(metadata: grpc.Metadata): Promise<NodeCaller>;
}

export const BEARER_PREFIX = 'Bearer ';

function unauthenticated(message: string): CaRefusal {
  return new CaRefusal(grpc.status.UNAUTHENTICATED, 'unauthenticated', message);
}

/** The bearer token of a request, or a refusal saying it is missing. */
export function bearerToken(metadata: grpc.Metadata): string {
  const values = metadata.get('authorization');
  const v = values.length === 1 ? String(values[0]) : '';
  if (values.length > 1) throw unauthenticated('more than one authorization header; send exactly one "authorization: Bearer <node token>"');
  if (!v.startsWith(BEARER_PREFIX) || v.length === BEARER_PREFIX.length) {
    throw unauthenticated('no node credential: send "authorization: Bearer <node token>" (agent: --ca-token-file)');
  }
  return v.slice(BEARER_PREFIX.length).trim();
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Refuses everyone, saying how to configure node credentials. */
export class NoNodeAuthenticator implements NodeAuthenticator {
  authenticate(): Promise<NodeCaller> {
    return Promise.reject(
      unauthenticated('this control plane has no node credentials configured (start it with --node-tokens FILE, or --kubernetes for ServiceAccount tokens)'),
    );
  }
}

export class TokenFileAuthenticator implements NodeAuthenticator {
  private entries: { node: string; digest: Buffer }[] = [];
  private stamp = '';
  private loadError: string | undefined;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    this.reload(true);
  }

  /** Reads the file again if it changed. Throws at start-up on a bad file; later, keeps the last good content. */
  private reload(initial = false): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch (err) {
      return this.fail(initial, `cannot read the node credentials file ${this.file}: ${(err as Error).message}`, err);
    }
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp === this.stamp) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch (err) {
      return this.fail(initial, `the node credentials file ${this.file} is not valid JSON: ${(err as Error).message}`, err);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return this.fail(initial, `the node credentials file ${this.file} must be a JSON object {"<node>": "<token>", ...}`);
    }
    const entries: { node: string; digest: Buffer }[] = [];
    for (const [node, token] of Object.entries(parsed)) {
      if (typeof token !== 'string' || token.length < 16) {
        return this.fail(initial, `the node credentials file ${this.file}: the token of node "${node}" must be a string of at least 16 characters`);
      }
      entries.push({ node, digest: digest(token) });
    }
    this.entries = entries;
    this.stamp = stamp;
    this.loadError = undefined;
    if (!initial) this.log.info({ file: this.file, nodes: entries.length }, 'node credentials reloaded');
  }

  private fail(initial: boolean, message: string, cause?: unknown): void {
    if (initial) throw new CaError(CA_ERR.NODE_TOKENS, message, { cause });
    if (this.loadError !== message) this.log.error({ file: this.file }, `${message}; keeping the previous node credentials`);
    this.loadError = message;
  }

  authenticate(metadata: grpc.Metadata): Promise<NodeCaller> {
    try {
      const d = digest(bearerToken(metadata));
      this.reload();
      let node: string | undefined;
      // Compare against every entry, so timing does not depend on where (or whether) the match is.
      for (const e of this.entries) if (timingSafeEqual(e.digest, d)) node = e.node;
      if (node === undefined) {
        throw unauthenticated(`the node token is not in ${this.file}; check the agent's --ca-token-file against the control plane's --node-tokens`);
      }
      return Promise.resolve({ node, via: 'token-file' });
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** What the CA needs from a TokenReview (authentication.k8s.io/v1). */
export interface TokenReviewResult {
  authenticated: boolean;
  username?: string;
  audiences?: string[];
  extra?: Record<string, string[]>;
  error?: string;
}

export interface TokenReviewer {
  review(token: string, audiences: string[]): Promise<TokenReviewResult>;
}

export const CA_AUDIENCE = 'nodemesh-ca';
export const AGENT_SERVICE_ACCOUNT = 'nodemesh-agent';
const EXTRA_POD_NAME = 'authentication.kubernetes.io/pod-name';
const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';
const EXTRA_NODE_NAME = 'authentication.kubernetes.io/node-name';

export interface KubernetesAuthOptions {
  reviewer: TokenReviewer;
  /** The agent pod by namespace/name, from the object store. */
  findPod: (namespace: string, name: string) => PodObject | undefined;
  /** Namespace of the agent's ServiceAccount; any namespace when unset. */
  agentNamespace?: string;
  agentServiceAccount?: string;
  audience?: string;
  cacheMs?: number;
  now?: () => number;
}

export class KubernetesNodeAuthenticator implements NodeAuthenticator {
  private readonly cache = new Map<string, { until: number; caller: NodeCaller }>();

  constructor(private readonly opts: KubernetesAuthOptions) {}

  async authenticate(metadata: grpc.Metadata): Promise<NodeCaller> {
    const token = bearerToken(metadata);
    const now = (this.opts.now ?? Date.now)();
    const key = digest(token).toString('hex');
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.caller;
    const audience = this.opts.audience ?? CA_AUDIENCE;
    let r: TokenReviewResult;
    try {
      r = await this.opts.reviewer.review(token, [audience]);
    } catch (err) {
      throw new CaRefusal(grpc.status.UNAVAILABLE, 'internal', `cannot review the token with the Kubernetes API: ${(err as Error).message}`);
    }
    const caller = this.decide(r, audience);
    for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
    this.cache.set(key, { until: now + (this.opts.cacheMs ?? 30_000), caller });
    return caller;
  }

  /** The node of a reviewed token, or the refusal that says which of the checks above failed. */
  decide(r: TokenReviewResult, audience: string): NodeCaller {
    if (!r.authenticated) throw unauthenticated(`the Kubernetes API did not authenticate the token${r.error ? `: ${r.error}` : ''}`);
    if (!(r.audiences ?? []).includes(audience)) {
      throw unauthenticated(`the token is not meant for ${audience} (audiences: ${(r.audiences ?? []).join(', ') || 'none'}); mount a projected token with audience ${audience}`);
    }
    const sa = this.opts.agentServiceAccount ?? AGENT_SERVICE_ACCOUNT;
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(r.username ?? '');
    if (!m || m[2] !== sa || (this.opts.agentNamespace !== undefined && m[1] !== this.opts.agentNamespace)) {
      const want = `system:serviceaccount:${this.opts.agentNamespace ?? '<namespace>'}:${sa}`;
      throw unauthenticated(`the token belongs to ${r.username ?? 'nobody'}, not to the agent's ServiceAccount ${want}`);
    }
    const ns = m[1]!;
    const podName = r.extra?.[EXTRA_POD_NAME]?.[0];
    const podUid = r.extra?.[EXTRA_POD_UID]?.[0];
    const claimedNode = r.extra?.[EXTRA_NODE_NAME]?.[0];
    if (!podName) throw unauthenticated('the token is not bound to a pod (no pod-name claim); mount a projected ServiceAccount token, not a legacy secret');
    const pod = this.opts.findPod(ns, podName);
    if (pod) {
      if (podUid && pod.meta.uid !== podUid) throw unauthenticated(`the token is bound to pod ${ns}/${podName} uid ${podUid}, but that pod now has uid ${pod.meta.uid}`);
      if (!pod.nodeName) throw unauthenticated(`the agent pod ${ns}/${podName} is not scheduled on a node yet`);
      if (claimedNode && claimedNode !== pod.nodeName) {
        throw unauthenticated(`the token says node ${claimedNode} but the agent pod ${ns}/${podName} runs on ${pod.nodeName}`);
      }
      return { node: pod.nodeName, via: 'kubernetes' };
    }
    if (claimedNode) return { node: claimedNode, via: 'kubernetes' };
    throw unauthenticated(`the agent pod ${ns}/${podName} is not known to the control plane yet; retry once it is listed`);
  }
}

/** A TokenReviewer backed by the API server (the control plane's ServiceAccount needs create on tokenreviews). */
export async function apiServerTokenReviewer(kubeconfig?: string): Promise<TokenReviewer> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const api = kc.makeApiClient(k8s.AuthenticationV1Api);
  return {
    async review(token: string, audiences: string[]): Promise<TokenReviewResult> {
      const res = await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } });
      const s = res.status ?? {};
      return {
        authenticated: s.authenticated === true,
        username: s.user?.username,
        audiences: s.audiences,
        extra: s.user?.extra as Record<string, string[]> | undefined,
        error: s.error,
      };
    },
  };
}
