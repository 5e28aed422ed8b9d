// Persists the last accepted xDS config in the agent's state dir, so a restart while the control plane is down
// still routes and enforces policy by it.

import fs from 'node:fs';
import path from 'node:path';
import type { XdsSnapshot, XdsSnapshotStore } from '../xds/ads-client';
import { writePrivateFile } from '../util/private-file';

interface FileShape {
  version: 1;
  node: string;
  savedAt: string;
  types: { typeUrl: string; versionInfo: string; resources: { name: string; version: string; typeUrl: string; value: string }[] }[];
}

export class XdsStateFile implements XdsSnapshotStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = path.join(stateDir, 'xds.json');
  }

  load(): XdsSnapshot | null {
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const f = JSON.parse(text) as FileShape;
    if (f.version !== 1 || typeof f.node !== 'string' || !Array.isArray(f.types)) throw new Error(`${this.path} is not a saved xDS config of this version`);
    return {
      node: f.node,
      savedAt: f.savedAt,
      types: f.types.map((t) => ({
        typeUrl: t.typeUrl,
        versionInfo: t.versionInfo,
        resources: t.resources.map((r) => ({ name: r.name, version: r.version, any: { type_url: r.typeUrl, value: Buffer.from(r.value, 'base64') } })),
      })),
    };
  }

  /** Atomic replace, root-only: it carries the mesh's policies. */
  save(s: XdsSnapshot): void {
    const body: FileShape = {
      version: 1,
      node: s.node,
      savedAt: s.savedAt,
      types: s.types.map((t) => ({
        typeUrl: t.typeUrl,
        versionInfo: t.versionInfo,
        resources: t.resources.map((r) => ({ name: r.name, version: r.version, typeUrl: r.any.type_url, value: Buffer.from(r.any.value).toString('base64') })),
      })),
    };
    writePrivateFile(this.path, JSON.stringify(body));
  }
}
