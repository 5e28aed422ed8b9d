// The regular expressions nodemesh accepts in config (Gateway API RegularExpression matches, Envoy safe_regex):
// the part of RE2 syntax that JavaScript's engine reads the same way.
//
// Envoy and Gateway API speak RE2; the agent runs JavaScript's engine. The control plane (validation) and the
// agent (before it ACKs) apply the same check, so what one accepts the other does: what JavaScript cannot
// compile (RE2's inline flags like `(?i)`, `(?P<name>`) and what RE2 does not have (backreferences, lookaround) are
// refused with a message saying why. JavaScript backtracks where RE2 runs in linear time: a pattern with nested
// repetition (`(a+)+$`) can be slow on a crafted value, which the operator writing the route controls.

export const MAX_REGEX_LENGTH = 1024;

/** Why `pattern` is refused, or undefined when it is usable. */
export function regexProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'an empty regular expression';
  if (pattern.length > MAX_REGEX_LENGTH) return `a regular expression longer than ${MAX_REGEX_LENGTH} characters`;
  const shape = shapeProblem(pattern);
  if (shape) return shape;
  try {
    new RegExp(pattern);
  } catch (e) {
    return `not a valid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  return undefined;
}

/** The pattern as a full match (Envoy and Gateway API match the whole value); throws with regexProblem's text. */
export function compileFullMatch(pattern: string): RegExp {
  const problem = regexProblem(pattern);
  if (problem) throw new Error(`"${pattern}": ${problem}`);
  return new RegExp(`^(?:${pattern})$`);
}

/** What RE2 lacks and JavaScript would accept: backreferences and lookaround (escapes and classes skipped). */
function shapeProblem(p: string): string | undefined {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '\\') {
      const next = p[i + 1] ?? '';
      if (/[1-9]/.test(next)) return 'backreferences (\\1 ...) are not supported (RE2 has none)';
      if (next === 'k' && p[i + 2] === '<') return 'named backreferences are not supported (RE2 has none)';
      i++;
    } else if (ch === '[') {
      // Skip the class: a `]` right after `[` or `[^` is a literal.
      let j = i + 1;
      if (p[j] === '^') j++;
      if (p[j] === ']') j++;
      while (j < p.length && p[j] !== ']') j += p[j] === '\\' ? 2 : 1;
      i = j;
    } else if (ch === '(' && /^\(\?<?[=!]/.test(p.slice(i, i + 4))) {
      return 'lookahead and lookbehind are not supported (RE2 has none)';
    }
  }
  return undefined;
}
