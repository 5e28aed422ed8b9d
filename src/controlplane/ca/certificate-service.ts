// CreateCertificate: authenticate the node, check the CSR, authorize the identity for that node, sign, count.

import * as grpc from '@grpc/grpc-js';
import type { CreateCertificateRequest, CreateCertificateResponse } from '../../identity/ca-proto';
import type { Logger } from '../../telemetry/logger';
import type { PodObject } from '../objects';
import type { CertificateAuthority } from './authority';
import { authorizeNode } from './authorize';
import { checkCsr } from './csr';
import { CaRefusal } from './errors';
import type { CaMetrics } from './metrics';
import type { NodeAuthenticator } from './node-auth';

export interface CertificateServiceDeps {
  ca: CertificateAuthority;
  authenticator: NodeAuthenticator;
  /** The pods the store holds now. */
  pods: () => Iterable<PodObject>;
  metrics: CaMetrics;
  log: Logger;
}

export class CertificateService {
  constructor(private readonly deps: CertificateServiceDeps) {}

  /** The chain for `req` (leaf first, root last), or a CaRefusal. */
  async createCertificate(req: CreateCertificateRequest, metadata: grpc.Metadata): Promise<string[]> {
    const { ca, authenticator, pods } = this.deps;
    const caller = await authenticator.authenticate(metadata);
    const ttl = Number(req.validity_duration ?? 0);
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new CaRefusal(grpc.status.INVALID_ARGUMENT, 'invalid_request', `validity_duration must be 0 (default) or a positive number of seconds, got ${req.validity_duration}`);
    }
    const csr = checkCsr(req.csr, ca.trustDomain);
    const entitledBy = authorizeNode(pods(), caller.node, csr.identity, csr.spiffeId);
    const issued = ca.issue({ publicKey: csr.publicKey, uris: [csr.spiffeId], ttlSeconds: ttl });
    this.deps.log.info(
      { node: caller.node, via: caller.via, identity: csr.spiffeId, serial: issued.serial, notAfter: issued.notAfter.toISOString(), pods: entitledBy },
      'certificate issued',
    );
    return issued.chain;
  }

  /** grpc-js handlers for nodemesh.ca.v1.CertificateService. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      CreateCertificate: (
        call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>,
        callback: grpc.sendUnaryData<CreateCertificateResponse>,
      ) => {
        this.createCertificate(call.request, call.metadata).then(
          (chain) => {
            this.deps.metrics.issued.inc();
            callback(null, { cert_chain: chain });
          },
          (err: unknown) => {
            const refusal =
              err instanceof CaRefusal ? err : new CaRefusal(grpc.status.INTERNAL, 'internal', `the CA failed to sign: ${(err as Error)?.message ?? String(err)}`);
            this.deps.metrics.refuse(refusal.reason);
            const level = refusal.reason === 'internal' ? 'error' : 'warn';
            this.deps.log[level]({ peer: call.getPeer(), reason: refusal.reason, err: refusal.reason === 'internal' ? err : undefined }, `certificate refused: ${refusal.message}`);
            callback({ code: refusal.status, details: refusal.message });
          },
        );
      },
    };
  }
}
