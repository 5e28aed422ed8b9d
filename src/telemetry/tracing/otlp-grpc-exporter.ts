// OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` with the bytes the queue encoded
// (an identity serializer), on @grpc/grpc-js, which the agent loads for xDS anyway. Dials `host:port` or
// `unix:///path`: the lab's agents reach the control plane's receiver over its xDS socket.

import * as grpc from '@grpc/grpc-js';
import { decodeExportResponse } from './otlp-proto';
import type { SpanExporter } from './span-queue';

export const TRACE_SERVICE = 'opentelemetry.proto.collector.trace.v1.TraceService';
export const TRACE_EXPORT_PATH = `/${TRACE_SERVICE}/Export`;

export class OtlpGrpcExporter implements SpanExporter {
  readonly describe: string;
  private readonly client: grpc.Client;

  constructor(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: Record<string, string> = {}) {
    this.describe = `otlp-grpc ${address}`;
    this.client = new grpc.Client(address, credentials, { ...options, 'grpc.max_send_message_length': 16 * 1024 * 1024 });
  }

  export(payload: Uint8Array, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Uint8Array, Buffer>(
        TRACE_EXPORT_PATH,
        (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        (b) => b,
        payload,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err) {
            reject(new Error(err.details || err.message));
            return;
          }
          const r = res && res.length > 0 ? decodeExportResponse(res) : { rejected: 0, message: '' };
          if (r.rejected > 0) reject(new Error(`collector rejected ${r.rejected} span(s): ${r.message}`));
          else resolve();
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
