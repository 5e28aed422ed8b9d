// The lab's progress reporter: short human lines on stderr; debug lines when NODEMESH_TRACE has "lab".

export interface LabLogger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export function traceEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.NODEMESH_TRACE ?? '').split(',').some((t) => t.trim() === 'lab' || t.trim() === '*');
}

export function stderrLogger(opts: { debug?: boolean; quiet?: boolean } = {}): LabLogger {
  const debug = opts.debug ?? traceEnabled();
  return {
    info: (m) => {
      if (!opts.quiet) process.stderr.write(`lab: ${m}\n`);
    },
    warn: (m) => process.stderr.write(`lab: warning: ${m}\n`),
    debug: (m) => {
      if (debug) process.stderr.write(`lab: debug: ${m}\n`);
    },
  };
}

export const silentLogger: LabLogger = { info: () => {}, warn: () => {}, debug: () => {} };
