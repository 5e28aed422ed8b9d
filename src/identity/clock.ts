// Time for the identity subsystem: passed in, so tests drive rotation and backoff with a fake clock.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Rotation timers must not keep a process alive that is otherwise done (tests, CLI one-shots).
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** setTimeout caps delays at 2^31-1 ms (~24.8 days); longer waits are re-armed in steps. */
const MAX_TIMER_MS = 0x7fffffff;

/** Runs `fn` at `at` (clock ms) or right away if that is past; returns a cancel function. */
export function runAt(clock: Clock, at: number, fn: () => void): () => void {
  let handle: unknown;
  let cancelled = false;
  const arm = (): void => {
    const wait = at - clock.now();
    if (wait > MAX_TIMER_MS) {
      handle = clock.setTimeout(arm, MAX_TIMER_MS);
      return;
    }
    handle = clock.setTimeout(() => {
      if (!cancelled) fn();
    }, Math.max(0, wait));
  };
  arm();
  return () => {
    cancelled = true;
    clock.clearTimeout(handle);
  };
}
