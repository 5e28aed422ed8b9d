// Control-plane HTTP endpoints: /metrics (Prometheus), /debug/config (store, resources, streams), /healthz/ready.

import type http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger';
import { createBoundedServer } from '../util/http';
import { ControlPlaneError, CP_ERR } from './errors';

export interface DebugProvider {
  /** JSON-serialisable dump of the store, the resources with versions, and the connected streams. */
  debugConfig(): unknown;
  ready(): boolean;
}

export class ControlPlaneHttpServer {
  private readonly server: http.Server;

  constructor(
    private readonly registry: Registry,
    private readonly debug: DebugProvider,
    private readonly log: Logger,
  ) {
    this.server = createBoundedServer(
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => {
          this.log.error({ err, url: req.url }, 'control-plane HTTP request failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
      },
      { name: 'control-plane HTTP', log },
    );
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    } else if (path === '/debug/config') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.debug.debugConfig(), null, 2) + '\n');
    } else if (path === '/healthz/ready') {
      const ok = this.debug.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('endpoints: /metrics /debug/config /healthz/ready\n');
    }
  }

  /** Listens on host:port (port 0 picks one); resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new ControlPlaneError(CP_ERR.LISTEN, `cannot listen for metrics on ${host}:${port}`, {
            hint: 'choose another --metrics-port, or 0 to turn it off',
            cause: err,
          }),
        );
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
