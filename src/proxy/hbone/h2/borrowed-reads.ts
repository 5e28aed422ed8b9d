// Reads a connected socket (TLS included) into a buffer we own instead of a fresh Buffer per read.
//
// Node offers this (`onread`) only for sockets it creates and connects itself; HBONE's sockets are made in a
// pod's netns or accepted by a TLS server. Without it, every TLS read of up to 16 KiB is a new ArrayBuffer, and
// at bulk rates that external memory alone made the receiving agent run a full mark-compact every ~160 ms.
// `onread` works through three per-socket fields and the handle's `useUserBuffer`; they are found by feature
// detection, and where they are missing (another Node version) the socket simply reads the usual way.

import type net from 'node:net';

export interface BorrowedReads {
  /**
   * The chunk just delivered is still referenced (a write that did not complete at once): reads from now on go
   * into a fresh buffer, and the old one is left to whoever holds it.
   */
  keep(): void;
}

interface OnreadFields {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

let fields: OnreadFields | null | undefined;

/** The symbols net.Socket keeps its `onread` state under, found on a socket made with `onread`. */
function onreadFields(probe: net.Socket): OnreadFields | null {
  if (fields !== undefined) return fields;
  const symbols = Object.getOwnPropertySymbols(probe);
  const find = (name: string): symbol | undefined => symbols.find((s) => s.description === name);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generator = find('kBufferGen');
  fields = buffer && callback && generator ? { buffer, callback, generator } : null;
  return fields;
}

type Slots = Record<symbol, unknown>;
interface UserBufferHandle {
  useUserBuffer?: (buf: Buffer) => void;
}

/**
 * Makes `socket` deliver its reads to `onChunk` as views of a `size`-byte buffer that the next read
 * overwrites, unless `keep()` was called. Data the socket had already buffered is delivered first (on the next
 * tick, like 'data' events). Returns null, changing nothing, where Node does not support it.
 */
export function borrowReads(socket: net.Socket, size: number, onChunk: (chunk: Buffer) => void): BorrowedReads | null {
  const f = onreadFields(socket);
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  if (f === null || handle === null || typeof handle.useUserBuffer !== 'function') return null;
  const slots = socket as unknown as Slots;
  // Only sockets made without `onread` are adopted: their fields exist and are empty.
  if (!(f.buffer in slots) || slots[f.buffer] !== null) return null;

  const already: Buffer[] = [];
  for (let b = socket.read() as Buffer | null; b !== null; b = socket.read() as Buffer | null) already.push(b);
  let current = Buffer.allocUnsafe(size);
  slots[f.buffer] = current;
  slots[f.callback] = (n: number, buf: Buffer): void => onChunk(buf.subarray(0, n));
  // Asked for the next buffer after every read: the same one, unless keep() retired it.
  slots[f.generator] = (): Buffer => current;
  handle.useUserBuffer(current);
  if (already.length > 0) process.nextTick(() => already.forEach(onChunk));
  socket.resume();
  return {
    keep: () => {
      current = Buffer.allocUnsafe(size);
    },
  };
}
