// The control plane as an OTLP trace receiver: `TraceService/Export` on its gRPC listener (what the lab's
// agents use, over the xDS socket) and `POST /v1/traces` (protobuf) for anything that speaks OTLP/HTTP.
// Spans land in the TraceStore.

import type * as grpc from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../telemetry/logger';
import { decodeExportRequest, encodeExportResponse } from '../../telemetry/tracing/otlp-proto';
import { TRACE_SERVICE } from '../../telemetry/tracing/otlp-grpc-exporter';
import type { TraceStore } from './trace-store';

export class OtlpReceiver {
  private readonly spans: Counter<'transport'>;
  private readonly rejected: Counter<'transport'>;

  constructor(
    private readonly store: TraceStore,
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.spans = new Counter({ name: 'nodemesh_controlplane_otlp_spans_received_total', help: 'Spans received over OTLP, by transport', labelNames: ['transport'], registers: [registry] });
    this.rejected = new Counter({ name: 'nodemesh_controlplane_otlp_requests_rejected_total', help: 'OTLP export requests that could not be decoded', labelNames: ['transport'], registers: [registry] });
  }

  /** Decodes and stores one ExportTraceServiceRequest; throws when the bytes are not one. */
  accept(body: Uint8Array, transport: 'grpc' | 'http'): number {
    let spans;
    try {
      spans = decodeExportRequest(body);
    } catch (err) {
      this.rejected.inc({ transport });
      throw err;
    }
    this.store.add(spans);
    this.spans.inc({ transport }, spans.length);
    return spans.length;
  }

  /** The gRPC service definition and handler (bytes in, bytes out), for the control plane's gRPC server. */
  grpcService(authenticate?: (md: grpc.Metadata) => Promise<string>): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
    const identity = (b: Buffer): Buffer => b;
    const definition: grpc.ServiceDefinition = {
      Export: {
        path: `/${TRACE_SERVICE}/Export`,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
        originalName: 'export',
      },
    };
    const handlers: grpc.UntypedServiceImplementation = {
      Export: async (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        if (authenticate) {
          try {
            await authenticate(call.metadata);
          } catch (err) {
            const e = err as { status?: number; message?: string };
            callback({ code: e.status ?? 16 /* UNAUTHENTICATED */, details: e.message ?? String(err) } as grpc.ServiceError, null);
            return;
          }
        }
        try {
          this.accept(call.request, 'grpc');
          callback(null, Buffer.from(encodeExportResponse()));
        } catch (err) {
          this.log.debug({ err }, 'undecodable OTLP export request');
          callback({ code: 3 /* INVALID_ARGUMENT */, details: `not an OTLP ExportTraceServiceRequest: ${(err as Error).message}` } as grpc.ServiceError, null);
        }
      },
    };
    return { definition, handlers };
  }
}
