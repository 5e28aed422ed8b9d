// The certificate service's wire shapes and gRPC definitions (protos/nodemesh/ca/v1/ca.proto), for both the CA and the agent.

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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

/** protos/ at the package root, found from src/ or dist/src/. */
function protosDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'protos', 'nodemesh', 'ca');
    if (fs.existsSync(candidate)) return path.dirname(path.dirname(candidate));
    if (path.dirname(dir) === dir) throw new Error(`cannot find protos/nodemesh/ca above ${__dirname}`);
  }
}

let cached: grpc.ServiceClientConstructor | undefined;

/** The CertificateService client constructor; `.service` is the server-side definition. */
export function certificateService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync('nodemesh/ca/v1/ca.proto', { includeDirs: [protosDir()], keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { ca: { v1: { CertificateService: grpc.ServiceClientConstructor } } } };
  cached = pkg.nodemesh.ca.v1.CertificateService;
  return cached;
}
