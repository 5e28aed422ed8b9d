// The certificate service's wire shapes and gRPC definitions (protos/nodemesh/ca/v1/ca.proto), for both the CA and the agent.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protosDir } from '../util/protos-dir';

export const CA_SERVICE_NAME = 'nodemesh.ca.v1.CertificateService';

export interface CreateCertificateRequest {
  csr: string;
  /** Seconds; 0 means the CA's default. */
  validity_duration: number;
  metadata?: { fields?: Record<string, unknown> } | null;
}

export interface CreateCertificateResponse {
  /** Leaf first, root last. */
  cert_chain: string[];
}

let cached: grpc.ServiceClientConstructor | undefined;

/** The CertificateService client constructor; `.service` is the server-side definition. */
export function certificateService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync('nodemesh/ca/v1/ca.proto', { includeDirs: [protosDir('nodemesh/ca/v1/ca.proto')], keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { ca: { v1: { CertificateService: grpc.ServiceClientConstructor } } } };
  cached = pkg.nodemesh.ca.v1.CertificateService;
  return cached;
}
