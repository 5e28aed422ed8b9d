// Closing an fd whose owner may already have closed it (a server that took it, a thread that released it).

import fs from 'node:fs';

export function closeFdQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // not open (any more)
  }
}
