// The http sample's query controls (?delay, ?status, ?fail, ?fail_status, ?fail_delay, ?fail_reset, ?chunked, ?trailers), checked all at once.

import { SampleError } from './errors';

export const MAX_DELAY_MS = 60_000;
export const MAX_FAIL = 1_000_000;
/** Longest `x-fail-key` accepted: keys are held in memory (see FailKeys). */
export const MAX_FAIL_KEY = 256;

export interface HttpControls {
  /** Answer this long after the request body ended. */
  delayMs: number;
  /** Status of a normal answer. */
  status: number;
  /** The first `fail` requests carrying one `x-fail-key` answer `failStatus` instead. */
  fail: number;
  failStatus: number;
  /** The counted failures answer this long after the request body ended, instead of `delayMs` (slow failures). */
  failDelayMs: number | null;
  /** The counted failures reset the connection (HTTP/2: the stream) instead of answering. */
  failReset: boolean;
  /** Send the body in several chunks without a content-length (HTTP/1.1 chunked encoding). */
  chunked: boolean;
  /** Send `x-body-sha256` as a trailer (implies chunked on HTTP/1.1). */
  trailers: boolean;
}

function bad(message: string): SampleError {
  return new SampleError('NM_SAMPLE_BAD_QUERY', message, 'see `nodemesh sample http --help` for the query controls');
}

function int(q: URLSearchParams, name: string, min: number, max: number, dflt: number, why = ''): number {
  const v = q.get(name);
  if (v === null) return dflt;
  if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`?${name}=${v}: must be an integer in ${min}..${max}${why}`);
  return Number(v);
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === '0' || v === 'false') return false;
  if (v === '' || v === '1' || v === 'true') return true;
  throw bad(`?${name}=${v}: must be 1, true, 0 or false`);
}

/** Unknown parameters are left alone: routing tests match on arbitrary query parameters. */
export function parseControls(q: URLSearchParams): HttpControls {
  // 1xx are interim answers that precede the real one; a server cannot end an exchange with them.
  const final = ' (1xx are interim answers, not final ones)';
  return {
    delayMs: int(q, 'delay', 0, MAX_DELAY_MS, 0),
    status: int(q, 'status', 200, 599, 200, final),
    fail: int(q, 'fail', 0, MAX_FAIL, 0),
    failStatus: int(q, 'fail_status', 200, 599, 500, final),
    failDelayMs: q.get('fail_delay') === null ? null : int(q, 'fail_delay', 0, MAX_DELAY_MS, 0),
    failReset: flag(q, 'fail_reset'),
    chunked: flag(q, 'chunked'),
    trailers: flag(q, 'trailers'),
  };
}

/** The key `?fail=N` counts under; throws when it is missing or too long. */
export function failKey(header: string | string[] | undefined): string {
  const key = Array.isArray(header) ? header[0] : header;
  if (!key) throw new SampleError('NM_SAMPLE_BAD_HEADER', '?fail=N needs a request header x-fail-key: KEY (requests are counted per key)', 'add -H "x-fail-key: my-test-1"');
  if (key.length > MAX_FAIL_KEY) throw new SampleError('NM_SAMPLE_BAD_HEADER', `x-fail-key is ${key.length} characters; at most ${MAX_FAIL_KEY}`, 'use a shorter key');
  return key;
}
