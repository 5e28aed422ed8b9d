// Raw fds: closing one whose owner may already have closed it, and the ledger of a data-plane worker thread.
//
// A worker thread can be ended without running any more JavaScript (worker.terminate() of a stuck event
// loop). Node then closes its handles (servers, sockets), not the raw fds it holds: pooled upstream sockets,
// listener copies waiting for a server, netns fds, each of which would keep the pod's network namespace
// alive. In a worker every such fd is adopted by a native ledger that closes what is left at teardown; an fd
// leaves it when a handle takes it (releaseFd) or when it is closed (closeFdQuietly). On the main thread
// there is no ledger: the process's exit closes everything.

import fs from 'node:fs';
import net from 'node:net';
import type { NativeFdLedger } from '../datapath/native';

let ledger: NativeFdLedger | null = null;

/** Makes this thread's raw fds closed at its teardown (data-plane workers). */
export function installFdLedger(l: NativeFdLedger | null): void {
  ledger = l;
}

/** Raw fds this thread's ledger still holds (0 without a ledger). */
export function heldFdCount(): number {
  return ledger?.size ?? 0;
}

/** This thread now holds `fd` outside any handle. */
export function adoptFd(fd: number): number {
  ledger?.adopt(fd);
  return fd;
}

/** The ledger lets go of `fd`: a handle is about to take it (net.Socket, server.listen), or the caller closes it. */
export function releaseFd(fd: number): number {
  ledger?.release(fd);
  return fd;
}

/**
 * A net.Socket that owns `fd` from now on (null: a new socket of the agent's own netns); if Node refuses the
 * fd, it is closed. `manualStart` (accepted by the constructor, absent from its typings) keeps an unconnected
 * fd from being read before connect(). `opts` is the caller's fresh object: `fd` is set on it, not copied.
 */
export function socketOnFd(fd: number | null, opts: net.SocketConstructorOpts & { manualStart?: boolean }): net.Socket {
  if (fd === null) return new net.Socket(opts);
  releaseFd(fd);
  opts.fd = fd;
  try {
    return new net.Socket(opts);
  } catch (err) {
    closeFdQuietly(fd);
    throw err;
  }
}

export function closeFdQuietly(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) return;
  if (ledger) {
    ledger.close(fd);
    return;
  }
  try {
    fs.closeSync(fd);
  } catch {
    // not open (any more)
  }
}
