// The contract between a fuzz target and the engine, and a finding's error type.
//
// A target module (test/fuzz/targets/NAME.ts) exports `target: FuzzTarget`. Its header comment states the
// invariant it checks; `run` throws (anything) when an input breaks it. What the code under test may throw
// by design (its typed errors for bad input) the target catches itself: any other throw is a finding.

export interface FuzzTarget {
  /**
   * sync: `run` finishes within the call (libFuzzer calls it directly; fastest).
   * async: `run` returns a promise (libFuzzer waits on its own thread while the event loop runs).
   */
  mode: 'sync' | 'async';
  /** Largest input libFuzzer generates (libFuzzer's -max_len). */
  maxLen: number;
  /** Tokens for libFuzzer's dictionary: the protocol's magic words, which coverage alone finds slowly. */
  dict?: readonly (string | Buffer)[];
  run(data: Buffer): void | Promise<void>;
}

/** An input broke the target's invariant (as opposed to the code under test throwing something unexpected). */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

/** Throws InvariantError with `message` unless `ok`. */
export function check(ok: boolean, message: string | (() => string)): asserts ok {
  if (!ok) throw new InvariantError(typeof message === 'function' ? message() : message);
}
