// Identity errors (agent side and CA side): stable codes, messages that say what to check.

import { NodemeshError, type CodeOf } from '../util/errors';

export const ID_ERR = {
  /** A string that is not `spiffe://<td>/ns/<ns>/sa/<sa>`, or of another trust domain. */
  BAD_IDENTITY: 'NM_ID_BAD_IDENTITY',
  /** The CA could not be reached or answered with an error. */
  CA_REQUEST: 'NM_ID_CA_REQUEST',
  /** The CA refused the caller's node credential. */
  CA_UNAUTHENTICATED: 'NM_ID_CA_UNAUTHENTICATED',
  /** The CA refused to sign this identity for this node. */
  CA_DENIED: 'NM_ID_CA_DENIED',
  /** The CA's answer is not a usable chain (wrong SAN, wrong key, broken chain). */
  BAD_CHAIN: 'NM_ID_BAD_CHAIN',
  /** certFor() on an identity no local pod holds. */
  NOT_MANAGED: 'NM_ID_NOT_MANAGED',
  /** The node token file is missing or empty. */
  TOKEN_FILE: 'NM_ID_TOKEN_FILE',
  /** PEM input that cannot be parsed. */
  BAD_PEM: 'NM_ID_BAD_PEM',
} as const;

export type IdentityErrorCode = CodeOf<typeof ID_ERR>;

export class IdentityError extends NodemeshError<IdentityErrorCode> {}
