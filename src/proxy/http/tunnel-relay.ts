// Two byte streams joined both ways (an upgraded HTTP/1.1 connection, e.g. WebSocket): half-close passed
// on, an error or reset on one side destroys the other, settled once both are closed.

import type { Duplex } from 'node:stream';

export interface TunnelResult {
  bytesUp: number;
  bytesDown: number;
  error: Error | null;
}

export function relayPlainStreams(down: Duplex, up: Duplex): Promise<TunnelResult> {
  return new Promise((resolve) => {
    let bytesUp = 0;
    let bytesDown = 0;
    let error: Error | null = null;
    let open = 2;
    const onClose = (): void => {
      if (--open === 0) resolve({ bytesUp, bytesDown, error });
    };
    const fail = (other: Duplex) => (err: Error) => {
      error ??= err;
      other.destroy();
    };
    down.on('data', (c: Buffer) => {
      bytesUp += c.length;
      if (!up.write(c)) down.pause();
    });
    up.on('data', (c: Buffer) => {
      bytesDown += c.length;
      if (!down.write(c)) up.pause();
    });
    up.on('drain', () => down.resume());
    down.on('drain', () => up.resume());
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', fail(up));
    up.on('error', fail(down));
    down.on('close', () => {
      if (!up.destroyed && !up.writableEnded) up.destroy();
      onClose();
    });
    up.on('close', () => {
      if (!down.destroyed && !down.writableEnded) down.destroy();
      onClose();
    });
    down.resume();
    up.resume();
  });
}
