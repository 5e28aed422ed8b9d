// Root-only files in the agent's state dir: written whole or not at all, readable by the owner alone.

import fs from 'node:fs';

/**
 * Writes `text` to a fresh temp file created 0600 (never readable by anyone else, not even for an instant) and
 * renames it over `file`: a crash mid-write leaves the previous version, never a torn or half-written one.
 */
export function writePrivateFile(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, text, { mode: 0o600, flag: 'w' });
    fs.chmodSync(tmp, 0o600); // a stale temp file of a recycled pid keeps its old mode through 'w'
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
