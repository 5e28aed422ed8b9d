// CA errors: stable codes for setup problems (files, keys, chains) and the refusals the certificate service counts.

import type * as grpc from '@grpc/grpc-js';
import { NodemeshError, type CodeOf } from '../../util/errors';

export const CA_ERR = {
  /** The CA directory cannot be created, read or written. */
  DIR: 'NM_CA_DIR',
  /** An operator-provided certificate, key or chain file cannot be read or parsed. */
  FILE: 'NM_CA_FILE',
  /** The CA key does not belong to the CA certificate. */
  KEY_MISMATCH: 'NM_CA_KEY_MISMATCH',
  /** The CA certificate is not usable for signing (not a CA, expired, wrong key type). */
  BAD_CA_CERT: 'NM_CA_BAD_CA_CERT',
  /** The chain from the CA certificate to the root does not verify. */
  BAD_CHAIN: 'NM_CA_BAD_CHAIN',
  /** Inconsistent CA options (e.g. --ca-cert without --ca-key). */
  CONFIG: 'NM_CA_CONFIG',
  /** The node credentials file is unreadable or malformed. */
  NODE_TOKENS: 'NM_CA_NODE_TOKENS',
  /** The CA Secret in Kubernetes cannot be read, created or used. */
  SECRET: 'NM_CA_SECRET',
} as const;

export type CaErrorCode = CodeOf<typeof CA_ERR>;

export class CaError extends NodemeshError<CaErrorCode> {}

/** Why a certificate request was refused: the `reason` label of nodemesh_ca_requests_refused_total. */
export type RefusalReason =
  | 'unauthenticated'
  | 'invalid_csr'
  | 'trust_domain'
  | 'not_scheduled'
  | 'invalid_request'
  | 'internal';

export const REFUSAL_REASONS: readonly RefusalReason[] = ['unauthenticated', 'invalid_csr', 'trust_domain', 'not_scheduled', 'invalid_request', 'internal'];

/** A refused certificate request: the gRPC status to answer with, the counted reason, and a message for the caller. */
export class CaRefusal extends Error {
  constructor(
    readonly status: grpc.status,
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
    this.name = 'CaRefusal';
  }
}
