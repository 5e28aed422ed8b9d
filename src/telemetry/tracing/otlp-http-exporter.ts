// OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `application/x-protobuf`) on a keep-alive connection:
// what Jaeger, Tempo and the OpenTelemetry collector take on 4318, and what the control plane serves too.

import http from 'node:http';
import https from 'node:https';
import { decodeExportResponse } from './otlp-proto';
import type { SpanExporter } from './span-queue';

export class OtlpHttpExporter implements SpanExporter {
  readonly describe: string;
  private readonly url: URL;
  private readonly agent: http.Agent;

  constructor(url: string) {
    this.url = new URL(url);
    this.describe = `otlp-http ${this.url.href}`;
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    // One export at a time: one connection is all it needs.
    this.agent = new Agent({ keepAlive: true, maxSockets: 1 });
  }

  export(payload: Uint8Array, timeoutMs: number): Promise<void> {
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/x-protobuf', 'content-length': payload.length },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode !== 200) {
              reject(new Error(`collector answered ${res.statusCode}: ${body.toString('utf8', 0, Math.min(body.length, 200))}`));
              return;
            }
            try {
              const r = body.length > 0 && String(res.headers['content-type'] ?? '').includes('protobuf') ? decodeExportResponse(body) : { rejected: 0, message: '' };
              if (r.rejected > 0) reject(new Error(`collector rejected ${r.rejected} span(s): ${r.message}`));
              else resolve();
            } catch {
              resolve();
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
