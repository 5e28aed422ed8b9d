// Where the package's protos/ directory is, from src/ or dist/src/.

import fs from 'node:fs';
import path from 'node:path';

/**
 * The protos/ directory at the package root that holds `entry` (a path inside it), searched upwards from this
 * file. dist/ may hold a copied package.json, so the search looks for the entry itself.
 */
export function protosDir(entry: string): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'protos');
    if (fs.existsSync(path.join(candidate, entry))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`cannot find protos/${entry} above ${__dirname}`);
  }
}
