// CSR checks: parse, verify the self-signature, and take the one SPIFFE ID from its URI SANs.

import * as grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import { parseSpiffeId, type WorkloadIdentity } from '../../identity/types';
import { CaRefusal } from './errors';

export interface CheckedCsr {
  publicKey: forge.pki.PublicKey;
  spiffeId: string;
  identity: WorkloadIdentity;
}

interface AltName {
  type: number;
  value: string;
}

/** URI SANs requested in the CSR's extensionRequest attribute. */
export function csrUris(csr: forge.pki.CertificateSigningRequest): string[] {
  const attr = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: { name?: string; altNames?: AltName[] }[] } | null;
  const san = attr?.extensions?.find((e) => e.name === 'subjectAltName');
  return (san?.altNames ?? []).filter((a) => a.type === 6).map((a) => a.value);
}

function invalid(message: string): CaRefusal {
  return new CaRefusal(grpc.status.INVALID_ARGUMENT, 'invalid_csr', message);
}

/** Everything the CA needs from a CSR, or a refusal saying what is wrong with it. */
export function checkCsr(pem: string, trustDomain: string): CheckedCsr {
  if (!pem || !pem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw invalid('csr is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)');
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(pem);
  } catch (err) {
    throw invalid(`csr cannot be parsed (the CA accepts RSA keys only): ${(err as Error).message}`);
  }
  let ok = false;
  try {
    ok = csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw invalid('csr signature does not verify: the request was altered or signed with another key');
  const uris = csrUris(csr);
  if (uris.length !== 1) {
    throw invalid(`csr must carry exactly one URI SAN (the SPIFFE ID), it has ${uris.length}${uris.length ? `: ${uris.join(', ')}` : ''}`);
  }
  const spiffeId = uris[0]!;
  const identity = parseSpiffeId(spiffeId);
  if (!identity) throw invalid(`csr URI SAN ${spiffeId} is not a SPIFFE workload ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`);
  if (identity.trustDomain !== trustDomain) {
    throw new CaRefusal(
      grpc.status.PERMISSION_DENIED,
      'trust_domain',
      `csr asks for ${spiffeId} in trust domain ${identity.trustDomain}, but this CA signs for ${trustDomain} only (check the agent's trust domain setting)`,
    );
  }
  return { publicKey: csr.publicKey!, spiffeId, identity };
}
