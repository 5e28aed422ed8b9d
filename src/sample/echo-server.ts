// `nodemesh sample echo`: a TCP echo server that honours half-close (echo until the peer's FIN, then FIN).

import net from 'node:net';

export interface EchoServerOptions {
  port: number;
  host?: string;
}

/**
 * allowHalfOpen keeps our write side open after the peer's FIN, so bytes still in flight are
 * echoed; pipe() ends our side once the readable side ended and everything was flushed.
 */
export function startEchoServer(opts: EchoServerOptions): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => sock.destroy());
    sock.pipe(sock);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
