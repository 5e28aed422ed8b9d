// Copies bytes both ways between an HBONE stream and a TCP socket (or two of either): backpressure, half-close, resets.

import net from 'node:net';
import type { Direction, RelayResult } from '../relay';
import { HboneStreamResetError } from './errors';
import { ErrorCode } from './h2/constants';
import type { HboneStream } from './h2-engine';

/** Either end of a relay: a TCP socket made with `allowHalfOpen: true` (and no `onread`), or an HTTP/2 stream. */
export type RelayEnd = net.Socket | HboneStream;

export interface StreamRelayHandlers {
  /** Called exactly once, after both ends are closed (same contract as `startRelay` in ../relay). */
  onClose(result: RelayResult): void;
  /**
   * A socket end created with `onread` into a Direction (see ../relay): its reads go straight from that
   * fixed buffer into the other end, pausing until each write completes, instead of a fresh Buffer per read.
   */
  zeroCopy?: { socket: net.Socket; direction: Direction };
}

/** Live byte counts, for trackers that report open connections. */
export interface StreamRelay {
  readonly bytesUp: number;
  readonly bytesDown: number;
}

type Side = 'downstream' | 'upstream';

function isHttp2(end: RelayEnd): end is HboneStream {
  return !(end instanceof net.Socket);
}

/**
 * A fault on one end aborts the other: a TCP error or reset becomes RST_STREAM(CONNECT_ERROR), as RFC 9113
 * §8.5 asks of a CONNECT proxy, and an RST_STREAM becomes a TCP reset.
 */
function abort(end: RelayEnd): void {
  if (isHttp2(end)) {
    end.reset(ErrorCode.CONNECT_ERROR);
  } else if (end.writableEnded && !end.writableFinished) {
    // libuv refuses a reset while our FIN is being sent (EINVAL), and Node then never emits 'close'.
    end.destroy();
  } else if (!end.destroyed) {
    end.resetAndDestroy();
  }
}

/**
 * Relays between `downstream` (where the connection came from) and `upstream` (where it goes). bytesUp counts
 * what was read from downstream and written upstream. A FIN or END_STREAM on one end is passed on as FIN or
 * END_STREAM (half-close); the other direction keeps flowing. Reading an end pauses while the other end's
 * write buffer is above its high-water mark. Ends that are paused (or already failed) are fine to pass in.
 */
export function relayStream(downstream: RelayEnd, upstream: RelayEnd, handlers: StreamRelayHandlers): StreamRelay {
  const zc = handlers.zeroCopy;
  let up = 0;
  let down = 0;
  const counts: StreamRelay = {
    get bytesUp() {
      return zc && zc.socket === downstream ? zc.direction.bytes : up;
    },
    get bytesDown() {
      return zc && zc.socket === upstream ? zc.direction.bytes : down;
    },
  };
  let error: Error | null = null;
  let failedSide: Side | null = null;
  const closedSides = new Set<Side>();

  const fail = (side: Side, err: Error): void => {
    if (error === null) {
      error = err;
      failedSide = side;
    }
    abort(side === 'downstream' ? upstream : downstream);
  };
  const closed = (side: Side): void => {
    if (closedSides.has(side)) return;
    closedSides.add(side);
    if (closedSides.size < 2) return;
    const result = { bytesUp: counts.bytesUp, bytesDown: counts.bytesDown, error, failedSide };
    zc?.direction.release();
    handlers.onClose(result);
  };

  const watch = (end: RelayEnd, side: Side, other: RelayEnd): void => {
    // A FIN or END_STREAM is passed on; the other direction keeps flowing.
    end.on('end', () => {
      if (!other.destroyed) other.end();
    });
    if (isHttp2(end)) {
      // Streams report faults in 'close': a reset (RST_STREAM(NO_ERROR) is none) or the session failing.
      end.on('close', () => {
        const code = end.rstCode ?? ErrorCode.NO_ERROR;
        if (end.error !== null) fail(side, end.error);
        else if (code !== ErrorCode.NO_ERROR) fail(side, new HboneStreamResetError(code));
        else if (other instanceof net.Socket && !other.destroyed && !other.readableEnded) {
          // Closed cleanly while the socket still sends (RST_STREAM(NO_ERROR): the peer wants no more): pass
          // on what came, then close the socket, since nothing it sends can go anywhere now.
          other.end();
          other.once('finish', () => other.destroy());
        }
        closed(side);
      });
    } else {
      end.on('error', (err: Error) => fail(side, err));
      end.on('close', () => closed(side));
    }
    if (end.destroyed) {
      // Failed or closed before we were handed it: its 'close' may already be gone.
      fail(side, (isHttp2(end) ? end.error : end.errored) ?? new Error(`${side} closed before the relay started`));
      setImmediate(() => closed(side));
    }
  };

  const copy = (src: RelayEnd, dst: RelayEnd, count: (n: number) => void): void => {
    if (zc && zc.socket === src) {
      zc.direction.bind(zc.socket, dst);
      return;
    }
    // Only streams that can lend their read buffer (our engine's) hand over borrowed chunks.
    const borrowing = isHttp2(src) && src.acceptBorrowedChunks !== undefined ? src : null;
    borrowing?.acceptBorrowedChunks!();
    src.on('data', (chunk: Buffer) => {
      count(chunk.length);
      if (dst.destroyed) return;
      const ok = dst.write(chunk);
      // A write that did not complete at once still points into the chunk, a view of the session's read buffer.
      if (borrowing !== null && dst.writableLength > 0) borrowing.keep!();
      if (!ok) src.pause();
    });
    dst.on('drain', () => src.resume());
  };

  watch(downstream, 'downstream', upstream);
  watch(upstream, 'upstream', downstream);
  copy(downstream, upstream, (n) => (up += n));
  copy(upstream, downstream, (n) => (down += n));
  downstream.resume();
  upstream.resume();
  return counts;
}
