// Base error type: every concern subclasses it with a stable `code` and a message that says what to check.

export class NodemeshError extends Error {
  /** Stable, greppable identifier (e.g. `NM_DATAPATH_NO_BTF`); never renamed once shipped. */
  readonly code: string;
  /** What the operator should check or do. */
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(options.hint ? `${message} (${options.hint})` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}
