// Client-first protocol detection: reads what the client sends first, within a bound, and says whether it
// is an HTTP/1.x request line, the HTTP/2 connection preface, or something else (plain TCP).
//
// A server-first protocol (SMTP, MySQL: the client waits for a greeting) sends nothing, so it is plain TCP
// after the bound and never waits longer: the bound is the whole price of detection for it.

import type { Duplex } from 'node:stream';

export type Sniffed = 'http1' | 'http2' | 'tcp';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** An HTTP/1.x request line longer than this is not one we wait for. */
const MAX_LINE = 8192;
/** RFC 9110 token characters: a method is made of them. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION = /^HTTP\/1\.[01]$/;

/** What the bytes seen so far say; `more` when they are a prefix of something we would accept. */
export function sniff(buf: Buffer): Sniffed | 'more' {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return buf.length >= PREFACE.length ? 'http2' : 'more';
  const eol = buf.indexOf(0x0a);
  // A line past the bound is TCP however it arrived: judged whole when it came in one read, it would be
  // HTTP/1 or TCP depending on how the client's bytes were segmented.
  if (eol >= MAX_LINE) return 'tcp';
  const line = (eol < 0 ? buf.subarray(0, MAX_LINE) : buf.subarray(0, eol)).toString('latin1').replace(/\r$/, '');
  const parts = line.split(' ');
  if (eol < 0) {
    // Incomplete: keep waiting only while it can still become `METHOD SP target SP HTTP/1.x`.
    if (buf.length >= MAX_LINE || parts.length > 3) return 'tcp';
    if (parts[0] !== '' && !TOKEN.test(parts[0]!)) return 'tcp';
    if (parts.length === 3 && !'HTTP/1.1'.startsWith(parts[2]!) && !'HTTP/1.0'.startsWith(parts[2]!)) return 'tcp';
    return 'more';
  }
  return parts.length === 3 && TOKEN.test(parts[0]!) && parts[1]!.length > 0 && VERSION.test(parts[2]!) ? 'http1' : 'tcp';
}

export interface Detected {
  kind: Sniffed;
  /** What was read while deciding: to be handed on with the connection. */
  bytes: Buffer;
  /** The bound passed before the client sent enough to decide. */
  timedOut: boolean;
  /** The client closed or failed before deciding. */
  closed: boolean;
}

/**
 * Reads from `socket` (paused, not yet read from) until `sniff` decides, the client ends, or `timeoutMs`
 * passes (null: no bound, for ports declared HTTP where only the version is to be told). Leaves the socket
 * paused with everything it read returned in `bytes`.
 */
export function detect(socket: Duplex, timeoutMs: number | null): Promise<Detected> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | null = null;
    const finish = (kind: Sniffed, timedOut: boolean, closed: boolean): void => {
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve({ kind, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), timedOut, closed });
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      const s = sniff(chunks.length === 1 ? c : Buffer.concat(chunks));
      if (s !== 'more') finish(s, false, false);
    };
    const onEnd = (): void => finish('tcp', false, true);
    if (timeoutMs !== null) timer = setTimeout(() => finish('tcp', true, false), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
