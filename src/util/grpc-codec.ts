// A protobufjs message type as @grpc/grpc-js (de)serializers: plain objects in, plain objects out.

import type protobuf from 'protobufjs';

export interface GrpcCodec {
  serialize: (v: object) => Buffer;
  deserialize: (b: Buffer) => unknown;
}

/** `type` is called per message, so a caller may resolve it lazily; `options` shape the decoded objects. */
export function grpcCodec(type: () => protobuf.Type, options: protobuf.IConversionOptions): GrpcCodec {
  return {
    serialize: (v) => {
      const t = type();
      return Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish());
    },
    deserialize: (b) => {
      const t = type();
      return t.toObject(t.decode(b), options);
    },
  };
}
