// Structured values from fuzz bytes: a reader that never fails (past the end it yields zeros and empty
// strings), so one input always means one sequence of choices and mutations of it stay meaningful.

export class FuzzInput {
  private pos = 0;

  constructor(private readonly data: Buffer) {}

  get remaining(): number {
    return Math.max(0, this.data.length - this.pos);
  }

  byte(): number {
    return this.pos < this.data.length ? this.data[this.pos++]! : 0;
  }

  bool(): boolean {
    return (this.byte() & 1) === 1;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    let v = 0;
    for (let span = 1; span < n; span *= 256) v = v * 256 + this.byte();
    return v % n;
  }

  /** Up to `max` bytes, length first. */
  bytes(max: number): Buffer {
    const n = Math.min(this.int(max + 1), this.remaining);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Up to `max` characters, latin1 (one per byte, so every byte value can appear). */
  string(max: number): string {
    return this.bytes(max).toString('latin1');
  }

  pick<T>(options: readonly T[]): T {
    return options[this.int(options.length)]!;
  }

  /** Everything not read yet. */
  rest(): Buffer {
    const out = this.data.subarray(this.pos);
    this.pos = this.data.length;
    return out;
  }
}

/** Writes the bytes that make FuzzInput read the given choices back: how seeds for structured targets are made. */
export class FuzzInputWriter {
  private readonly parts: number[] = [];

  byte(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }

  bool(v: boolean): this {
    return this.byte(v ? 1 : 0);
  }

  /** The bytes FuzzInput.int(n) reads as `v` (v < n). */
  int(n: number, v: number): this {
    if (n <= 1) return this;
    const digits: number[] = [];
    let rest = v;
    for (let span = 1; span < n; span *= 256) {
      digits.unshift(rest % 256);
      rest = Math.floor(rest / 256);
    }
    for (const d of digits) this.byte(d);
    return this;
  }

  bytes(max: number, b: Buffer): this {
    this.int(max + 1, b.length);
    for (const c of b) this.byte(c);
    return this;
  }

  string(max: number, s: string): this {
    return this.bytes(max, Buffer.from(s, 'latin1'));
  }

  pick<T>(options: readonly T[], v: T): this {
    const i = options.indexOf(v);
    if (i < 0) throw new Error(`${String(v)} is not among the options`);
    return this.int(options.length, i);
  }

  raw(b: Buffer): this {
    for (const c of b) this.byte(c);
    return this;
  }

  done(): Buffer {
    return Buffer.from(this.parts);
  }
}

/**
 * A JSON value from the input, biased to the shapes decoders meet: objects use `keys` (the fields a decoder
 * reads) most of the time, so type confusion (a string where a list is expected, null inside a list, a
 * number for an object) is reached without first having to write valid JSON text byte by byte.
 */
export function jsonValue(input: FuzzInput, keys: readonly string[], depth = 3): unknown {
  const kind = input.int(depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return input.bool();
    case 2:
      return input.pick([0, -1, 1, 65535, 65536, 1.5, 2 ** 53, -0]);
    case 3:
      return input.string(24);
    case 4:
      return input.bool() ? input.pick(keys) : input.pick(['', '10.0.0.1', '10.0.0.1/24', 'fd00::1', 'default', '/proc/self/ns/net']);
    case 5:
    case 6: {
      const o: Record<string, unknown> = {};
      for (let n = input.int(5); n > 0; n--) o[input.int(4) > 0 ? input.pick(keys) : input.string(8)] = jsonValue(input, keys, depth - 1);
      return o;
    }
    default:
      return Array.from({ length: input.int(4) }, () => jsonValue(input, keys, depth - 1));
  }
}
