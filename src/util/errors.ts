// Base error type: every concern subclasses it with a stable `code` and a message that says what to check.

export interface NodemeshErrorOptions {
  /** What the operator should check or do; appended to the message. */
  hint?: string;
  cause?: unknown;
}

/** The union of the codes in a concern's `as const` table of codes (e.g. `CodeOf<typeof CA_ERR>`). */
export type CodeOf<Table extends Record<string, string>> = Table[keyof Table];

/** `Code` narrows `code` for a concern: `class CaError extends NodemeshError<CaErrorCode> {}`. */
export class NodemeshError<Code extends string = string> extends Error {
  /** Stable, greppable identifier (e.g. `NM_DATAPATH_NO_BTF`); never renamed once shipped. */
  readonly code: Code;
  /** What the operator should check or do. */
  readonly hint: string | undefined;

  constructor(code: Code, message: string, options: NodemeshErrorOptions = {}) {
    super(options.hint ? `${message} (${options.hint})` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }

  toJSON(): { code: Code; message: string } {
    return { code: this.code, message: this.message };
  }
}
