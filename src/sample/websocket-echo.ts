// `/ws` on the http sample: a WebSocket echo (RFC 6455, through the `ws` package); the 101 says who answered.
//
// `ws` rather than a hand-written codec: it is the reference WebSocket implementation for Node,
// passes the Autobahn conformance suite, has no dependencies of its own and was already in the
// install (through @kubernetes/client-node). Loading it costs ~50 ms, so it is loaded on the first
// upgrade only: most runs of the sample never see one.

import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';

/** Frames (and messages) larger than this close the connection with 1009: memory stays bounded. */
export const WS_MAX_PAYLOAD = 16 * 1024 * 1024;
export const WS_PATH = '/ws';

function refuse(socket: Duplex, status: string, why: string, servedBy: string): void {
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nx-served-by: ${servedBy}\r\ncontent-length: ${Buffer.byteLength(why)}\r\nconnection: close\r\n\r\n${why}`);
}

/** Takes a WebSocket upgrade request: echoes every text and binary message on `/ws` (ws answers pings). */
export function websocketEcho(servedBy: string): (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  let wss: Promise<WebSocketServer> | undefined;
  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== WS_PATH) return refuse(socket, '404 Not Found', `WebSocket upgrades are served on ${WS_PATH} only\n`, servedBy);
    wss ??= import('ws').then(({ WebSocketServer }) => {
      const server = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
      server.on('headers', (headers) => headers.push(`x-served-by: ${servedBy}`));
      return server;
    });
    void wss.then((server) => {
      if (socket.destroyed) return;
      // handleUpgrade answers 400 itself to a bad handshake (missing key, wrong version).
      server.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => {
          ws.send(data, { binary: isBinary }, () => {
            if (ws.isPaused && ws.bufferedAmount <= WS_MAX_PAYLOAD) ws.resume();
          });
          // A peer that sends without reading would otherwise make the echo buffer without bound.
          if (ws.bufferedAmount > WS_MAX_PAYLOAD) ws.pause();
        });
        ws.on('error', () => ws.terminate());
      });
    });
  };
}
