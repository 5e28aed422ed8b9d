// Teardown that keeps going: every step runs even when an earlier one threw, and what they threw is kept.

/**
 * `attempt` runs each step even when an earlier one threw, and `errors` keeps what they threw, so one stuck entry
 * does not leave the rest behind and the caller can still report it.
 */
export function teardownSteps(): { attempt: (fn: () => void) => void; errors: unknown[] } {
  const errors: unknown[] = [];
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      errors.push(err);
    }
  };
  return { attempt, errors };
}
