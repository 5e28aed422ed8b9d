// The certificate service's wire shapes and gRPC definitions (protos/nodemesh/ca/v1/ca.proto), for both the CA and the
// agent. The .proto is parsed with protobufjs, which the agent loads for xDS anyway (no @grpc/proto-loader).

import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { grpcCodec } from '../util/grpc-codec';
import { protosDir } from '../util/protos-dir';

export const CA_SERVICE_NAME = 'nodemesh.ca.v1.CertificateService';
const CA_PROTO = 'nodemesh/ca/v1/ca.proto';

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

/** Decoded messages: proto field names (keepCase), int64 as Number, absent fields as their defaults. */
const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

let cached: grpc.ServiceClientConstructor | undefined;

/** The CertificateService client constructor; `.service` is the server-side definition. */
export function certificateService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  // google/protobuf/struct.proto is one of protobufjs's bundled common types (its Value fields are camelCase,
  // as in the xDS codecs); nodemesh sends no metadata and reads none.
  const root = new protobuf.Root().loadSync(path.join(protosDir(CA_PROTO), CA_PROTO), { keepCase: true });
  const service = root.lookupService(CA_SERVICE_NAME);
  const method = service.methods['CreateCertificate']!;
  const requestType = root.lookupType(method.requestType);
  const responseType = root.lookupType(method.responseType);
  const req = grpcCodec(() => requestType, DECODE_OPTIONS);
  const res = grpcCodec(() => responseType, DECODE_OPTIONS);
  const definition: grpc.ServiceDefinition = {
    CreateCertificate: {
      path: `/${CA_SERVICE_NAME}/CreateCertificate`,
      requestStream: false,
      responseStream: false,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: 'createCertificate',
    },
  };
  cached = grpc.makeGenericClientConstructor(definition, 'CertificateService');
  return cached;
}
