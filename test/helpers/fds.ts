// This process's file descriptors, as tests of fd ownership see them.

import fs from 'node:fs';

/** Whether `fd` is open in this process (whoever holds it). */
export function isFdOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}
