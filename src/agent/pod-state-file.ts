// Persists the enrolled-pod list in the agent's state dir so a restarted agent can reconcile without callers.

import fs from 'node:fs';
import path from 'node:path';
import type { EnrolledPod } from '../enroll/protocol';

interface FileShape {
  version: 1;
  pods: EnrolledPod[];
}

export class PodStateFile {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = path.join(stateDir, 'pods.json');
  }

  load(): EnrolledPod[] {
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const parsed = JSON.parse(text) as FileShape;
    return Array.isArray(parsed.pods) ? parsed.pods : [];
  }

  /** Atomic replace: a crash mid-write leaves the previous list, never a torn file. */
  save(pods: EnrolledPod[]): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const body: FileShape = { version: 1, pods };
    fs.writeFileSync(tmp, JSON.stringify(body, null, 2));
    fs.renameSync(tmp, this.path);
  }
}
