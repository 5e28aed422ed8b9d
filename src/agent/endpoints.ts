// The agent's local servers: unix sockets on its own paths in the state dir (published under the node's
// well-known names by whichever agent is active) and the admin, metrics and readiness TCP ports.

import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from '../telemetry/logger';
import { closeServer, listenTcp } from '../util/http';
import type { PublicSocket, StateDir } from './state-dir';

export class AgentEndpoints {
  private readonly unix = new Map<PublicSocket, http.Server | net.Server>();
  private readonly tcp: http.Server[] = [];

  constructor(
    private readonly stateDir: StateDir,
    private readonly log: Logger,
  ) {}

  get tcpServing(): boolean {
    return this.tcp.length > 0;
  }

  /** Serves `server` on this agent's private path for `name` (root-only). */
  async serveUnix(name: PublicSocket, server: http.Server | net.Server): Promise<void> {
    const p = this.stateDir.privatePath(name);
    fs.rmSync(p, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, () => {
        server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(p, 0o600);
    this.unix.set(name, server);
  }

  /**
   * Admin, metrics and readiness ports. A successor binds them once its predecessor let them go (`retry`: a
   * predecessor that crashed frees them at once, one that hangs maybe never: then they stay off, and the log
   * says so; the unix admin socket works regardless).
   */
  async serveTcp(ports: { port: number; host: string; make: () => http.Server }[], retry = false): Promise<void> {
    for (const { port, host, make } of ports) {
      if (!port) continue;
      const server = make();
      for (let attempt = 0; ; attempt++) {
        try {
          await listenTcp(server, port, host);
          this.tcp.push(server);
          break;
        } catch (err) {
          if (!retry) throw err;
          if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 100) {
            this.log.error({ err, port }, 'cannot listen on this port; it stays off (the unix admin socket works)');
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }

  /** Lets the TCP ports go (to a successor). */
  async closeTcp(): Promise<void> {
    await Promise.all(this.tcp.splice(0).map(closeServer));
  }

  /** Everything closes; the well-known names this agent published go first (never a successor's). */
  async closeAll(): Promise<void> {
    for (const name of ['admin', 'enroll', 'handover'] as const) this.stateDir.unpublish(name);
    const unix = [...this.unix.values()];
    this.unix.clear();
    await Promise.all([this.closeTcp(), ...unix.map((s) => (s instanceof http.Server ? closeServer(s) : new Promise<void>((r) => s.close(() => r()))))]);
  }
}
