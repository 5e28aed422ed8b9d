// Starts the CA inside the control plane: builds the authority and the node authenticator, registers
// CertificateService on the xDS gRPC server, and optionally serves it on its own TLS listener.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import { HealthImplementation } from 'grpc-health-check';
import type { Registry } from 'prom-client';
import { CA_SERVICE_NAME, certificateService } from '../../identity/ca-proto';
import { generateForgeKeyPair } from './keys';
import type { Logger } from '../../telemetry/logger';
import type { ObjectStore } from '../store';
import { CertificateAuthority, type CaOptions } from './authority';
import { CertificateService } from './certificate-service';
import { CA_ERR, CaError } from './errors';
import { CaMetrics } from './metrics';
import { apiServerSecrets, loadOrCreateCaSecret, type SecretApi } from './secret-store';
import {
  apiServerTokenReviewer,
  KubernetesNodeAuthenticator,
  NoNodeAuthenticator,
  TokenFileAuthenticator,
  type NodeAuthenticator,
  type TokenReviewer,
} from './node-auth';

/** DNS name in the CA's TLS serving certificate that agents check (grpc.ssl_target_name_override). */
export const CA_SERVER_NAME = 'nodemesh-ca';
export const DEFAULT_CA_TLS_PORT = 15012;
const SERVING_CERT_TTL_SECONDS = 365 * 24 * 3600;

export interface CaServerOptions extends CaOptions {
  /** JSON {"<node>": "<token>"}; re-read when it changes. Takes precedence over `kubernetes`. */
  nodeTokensFile?: string;
  /** Authenticate agents by their projected ServiceAccount token (TokenReview). */
  kubernetes?: { reviewer?: TokenReviewer; kubeconfig?: string; agentNamespace?: string; agentServiceAccount?: string; audience?: string };
  /** Also serve CertificateService with TLS here (`host:port`), with a serving certificate from this CA. */
  tlsAddress?: string;
  /** Extra DNS names / IPs for the serving certificate (besides nodemesh-ca, localhost, the host name, loopback). */
  tlsNames?: string[];
  /** Keep the CA in this Kubernetes Secret (generated when absent); takes precedence over `dir` and files. */
  secret?: { namespace: string; name: string; api?: SecretApi; kubeconfig?: string };
}

export interface CaDeps {
  store: ObjectStore;
  registry: Registry;
  log: Logger;
  /** Adds a service to the xDS gRPC server (before it binds). */
  register: (definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation) => void;
}

export interface CaHandle {
  readonly authority: CertificateAuthority;
  /** PEM of the root agents trust (also what verifies the TLS listener). */
  readonly rootPem: string;
  /** Bound `host:port` of the TLS listener, when there is one. */
  readonly tlsAddress: string | undefined;
  readonly metrics: CaMetrics;
  /** Who is calling (token file or TokenReview): also gates xDS on the TLS listener. */
  readonly authenticator: NodeAuthenticator;
  /** CertificateService handlers, for another listener (the control plane's TLS one). */
  readonly handlers: grpc.UntypedServiceImplementation;
  servingCredentials(address: string, extraNames: string[]): Promise<grpc.ServerCredentials>;
  close(): Promise<void>;
}

function makeAuthenticator(opts: CaServerOptions, deps: CaDeps): Promise<NodeAuthenticator> | NodeAuthenticator {
  if (opts.nodeTokensFile !== undefined) return new TokenFileAuthenticator(opts.nodeTokensFile, deps.log);
  if (opts.kubernetes) {
    const k = opts.kubernetes;
    const build = (reviewer: TokenReviewer): NodeAuthenticator =>
      new KubernetesNodeAuthenticator({
        reviewer,
        findPod: (ns, name) => deps.store.pods().find((p) => p.meta.namespace === ns && p.meta.name === name),
        agentNamespace: k.agentNamespace,
        agentServiceAccount: k.agentServiceAccount,
        audience: k.audience,
      });
    return k.reviewer ? build(k.reviewer) : apiServerTokenReviewer(k.kubeconfig).then(build);
  }
  deps.log.warn('the CA has no node credentials (--node-tokens or --kubernetes); every certificate request will be refused');
  return new NoNodeAuthenticator();
}

class CaServer implements CaHandle {
  tlsAddress: string | undefined;
  private tlsServer: grpc.Server | undefined;

  constructor(
    readonly authority: CertificateAuthority,
    readonly metrics: CaMetrics,
    readonly authenticator: NodeAuthenticator,
    private readonly service: CertificateService,
    private readonly log: Logger,
  ) {}

  get rootPem(): string {
    return this.authority.rootPem;
  }

  /** TLS credentials with a serving certificate from this CA for `address`'s host and the usual names. */
  async servingCredentials(address: string, extraNames: string[]): Promise<grpc.ServerCredentials> {
    const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const names = new Set([CA_SERVER_NAME, 'localhost', os.hostname(), ...extraNames]);
    const ips = new Set(['127.0.0.1', '::1']);
    if (net.isIP(host) && host !== '0.0.0.0' && host !== '::') ips.add(host);
    for (const n of [...names]) {
      if (!net.isIP(n)) continue;
      names.delete(n);
      ips.add(n);
    }
    const keys = await generateForgeKeyPair();
    const issued = this.authority.issue({ publicKey: keys.publicKey, dnsNames: [...names], ips: [...ips], servingTtlSeconds: SERVING_CERT_TTL_SECONDS });
    const keyPem = forge.pki.privateKeyToPem(keys.privateKey);
    // The chain without the root: clients have the root already.
    const chainPem = issued.chain.slice(0, -1).join('');
    this.log.info({ names: [...names], ips: [...ips], serial: issued.serial }, 'TLS serving certificate issued');
    return grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(keyPem), cert_chain: Buffer.from(chainPem) }], false);
  }

  get handlers(): grpc.UntypedServiceImplementation {
    return this.service.handlers();
  }

  async listenTls(address: string, extraNames: string[]): Promise<void> {
    const creds = await this.servingCredentials(address, extraNames);
    const server = new grpc.Server();
    server.addService(certificateService().service, this.service.handlers());
    const health = new HealthImplementation({ '': 'SERVING', [CA_SERVICE_NAME]: 'SERVING' });
    health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, creds, (err, p) => (err ? reject(err) : resolve(p)))).catch(
      (err: unknown) => {
        server.forceShutdown();
        throw new CaError(CA_ERR.CONFIG, `cannot listen for the CA on ${address}: ${(err as Error).message}`, {
          hint: 'is another control plane running there? choose another --ca-address',
          cause: err,
        });
      },
    );
    this.tlsServer = server;
    this.tlsAddress = address.replace(/:\d+$/, `:${port}`);
    this.log.info({ address: this.tlsAddress }, 'CA serving over TLS');
  }

  async close(): Promise<void> {
    this.tlsServer?.forceShutdown();
    this.tlsServer = undefined;
  }
}

/** Builds the CA, registers CertificateService through `deps.register`, and starts the TLS listener if asked. */
export async function startCertificateAuthority(opts: CaServerOptions, deps: CaDeps): Promise<CaHandle> {
  if (opts.nodeTokensFile !== undefined && !fs.existsSync(opts.nodeTokensFile)) {
    throw new CaError(CA_ERR.NODE_TOKENS, `the node credentials file ${opts.nodeTokensFile} does not exist`, {
      hint: 'create it as {"<node>": "<token>", ...} or drop --node-tokens',
    });
  }
  let caOpts: CaServerOptions = opts;
  if (opts.secret) {
    const api = opts.secret.api ?? (await apiServerSecrets(opts.secret.kubeconfig));
    const m = await loadOrCreateCaSecret(api, opts.secret.namespace, opts.secret.name, opts.trustDomain ?? 'cluster.local');
    deps.log.info({ secret: `${opts.secret.namespace}/${opts.secret.name}`, created: m.created }, m.created ? 'CA root generated and stored in its Secret' : 'CA loaded from its Secret');
    caOpts = { ...opts, material: m };
  }
  const authority = await CertificateAuthority.create(caOpts);
  const authenticator = await makeAuthenticator(opts, deps);
  const metrics = new CaMetrics(deps.registry);
  const log = deps.log;
  const service = new CertificateService({ ca: authority, authenticator, pods: () => deps.store.pods(), metrics, log });
  deps.register(certificateService().service, service.handlers());
  const server = new CaServer(authority, metrics, authenticator, service, log);
  if (opts.tlsAddress !== undefined) await server.listenTls(opts.tlsAddress, opts.tlsNames ?? []);
  log.info({ origin: authority.origin, trustDomain: authority.trustDomain, maxCertTtlSeconds: authority.maxTtlSeconds }, 'CA ready');
  return server;
}
