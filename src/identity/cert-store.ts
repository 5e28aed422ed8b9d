// Keeps each local identity's key and certificate chain on the node (root-only files in the agent's state dir), so
// an agent restarted or upgraded while the CA is unreachable still serves its pods with a valid certificate.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writePrivateFile } from '../util/private-file';

/** What is kept per identity: the private key and the chain exactly as the CA answered it (leaf first, root last). */
export interface StoredCertificate {
  spiffeId: string;
  keyPem: string;
  chain: string[];
}

/** Where a SecretManager keeps its certificates. Implementations never throw from `load` for a missing entry. */
export interface CertStore {
  load(spiffeId: string): StoredCertificate | null;
  save(cert: StoredCertificate): void;
  remove(spiffeId: string): void;
}

interface FileShape {
  version: 1;
  spiffeId: string;
  keyPem: string;
  chain: string[];
}

/**
 * One file per identity under `dir` (0700), each 0600 and replaced atomically. A file that anyone but its owner
 * could read, or that another user owns, is refused: a key that may have leaked is not presented.
 */
export class CertDir implements CertStore {
  constructor(readonly dir: string) {}

  private file(spiffeId: string): string {
    // SPIFFE IDs carry slashes: the file name is a digest of the ID, which the file repeats
    return path.join(this.dir, `${createHash('sha256').update(spiffeId).digest('hex').slice(0, 24)}.json`);
  }

  load(spiffeId: string): StoredCertificate | null {
    const file = this.file(spiffeId);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      const st = fs.fstatSync(fd);
      if ((st.mode & 0o077) !== 0) throw new Error(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): not using a key that may have leaked`);
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new Error(`${file} belongs to uid ${st.uid}, not to this agent (uid ${uid})`);
      const f = JSON.parse(fs.readFileSync(fd, 'utf8')) as FileShape;
      if (f.version !== 1 || f.spiffeId !== spiffeId || typeof f.keyPem !== 'string' || !Array.isArray(f.chain)) {
        throw new Error(`${file} does not hold a saved certificate for ${spiffeId}`);
      }
      return { spiffeId, keyPem: f.keyPem, chain: f.chain };
    } finally {
      fs.closeSync(fd);
    }
  }

  save(cert: StoredCertificate): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.dir, 0o700);
    const body: FileShape = { version: 1, spiffeId: cert.spiffeId, keyPem: cert.keyPem, chain: cert.chain };
    writePrivateFile(this.file(cert.spiffeId), JSON.stringify(body));
  }

  remove(spiffeId: string): void {
    fs.rmSync(this.file(spiffeId), { force: true });
  }
}
