// Where the dashboard listens: a TCP address, or a listening socket handed over as a file descriptor (the
// lab opens 127.0.0.1:PORT in the host's network namespace, where a browser is, and passes it to the control
// plane it runs inside the lab's fabric namespace).

import type http from 'node:http';
import { ControlPlaneError, CP_ERR } from '../errors';
import { closeServer } from '../../util/http';
import { createDashboardServer, type DashboardDeps } from './dashboard-server';

export type DashboardListen = { host: string; port: number } | { fd: number; url: string };

export interface DashboardHandle {
  url: string;
  close(): Promise<void>;
}

export async function startDashboard(where: DashboardListen, deps: DashboardDeps): Promise<DashboardHandle> {
  const server: http.Server = createDashboardServer(deps);
  const url = await new Promise<string>((resolve, reject) => {
    const onError = (err: Error): void =>
      reject(new ControlPlaneError(CP_ERR.LISTEN, `cannot serve the dashboard on ${'fd' in where ? `fd ${where.fd}` : `${where.host}:${where.port}`}`, { hint: 'choose another --dashboard-address, or off', cause: err }));
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      if ('fd' in where) return resolve(where.url);
      const a = server.address();
      const port = typeof a === 'object' && a ? a.port : where.port;
      resolve(`http://${where.host.includes(':') ? `[${where.host}]` : where.host}:${port}`);
    };
    if ('fd' in where) server.listen({ fd: where.fd }, done);
    else server.listen(where.port, where.host, done);
  });
  return { url, close: () => closeServer(server) };
}
