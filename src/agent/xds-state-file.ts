// Persists the last accepted xDS config in the agent's state dir, so a restart while the control plane is down
// still routes and enforces policy by it. The file is the only place the resources' bytes are kept: the ADS client
// holds a resource's bytes only until they are saved, and a save copies the unchanged ones from the file it replaces.

import fs from 'node:fs';
import path from 'node:path';
import type { XdsSnapshot, XdsSnapshotStore } from '../xds/ads-client';

interface Header {
  version: 1;
  node: string;
  savedAt: string;
  /** One resource per line (below): where each one is can be found, and copied into the next file unread. */
  layout?: 'lines';
}

interface TypeHeader {
  typeUrl: string;
  versionInfo: string;
}

interface FileShape extends Header {
  types: (TypeHeader & { resources: FileResource[] })[];
}

interface FileResource {
  name: string;
  version: string;
  typeUrl: string;
  value: string;
}

const NEWLINE = 0x0a;
const COMMA = 0x2c;
/** Writes are gathered into chunks of this size. */
const CHUNK = 1 << 20;

/**
 * `xds.json`: one JSON document (a version-1 saved config, which any build reads whole), laid out one resource per
 * line so this build can find a resource's bytes by position:
 *
 *   {"version":1,"node":…,"savedAt":…,"layout":"lines","types":[
 *   {"typeUrl":…,"versionInfo":…,"resources":[
 *   {"name":…,"version":…,"typeUrl":…,"value":"<base64>"},
 *   …
 *   ]},
 *   …
 *   ]}
 *
 * Where the resources of the current file are (`saved` handles: indexes into `at`/`len`) is all it keeps in memory.
 */
export class XdsStateFile implements XdsSnapshotStore {
  readonly path: string;
  /** The current file, open: handles refer to its bytes even after another agent renames a file over the path. */
  private fd: number | null = null;
  private at = new Float64Array(0);
  private len = new Uint32Array(0);

  constructor(stateDir: string) {
    this.path = path.join(stateDir, 'xds.json');
  }

  load(): XdsSnapshot | null {
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let keep = false;
    try {
      const buf = Buffer.alloc(fs.fstatSync(fd).size);
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(fd, buf, got, buf.length - got, got);
        if (n === 0) break;
        got += n;
      }
      const first = buf.indexOf(NEWLINE);
      const head = first < 0 ? null : parseOr<Header>(`${buf.toString('utf8', 0, first).replace(/"types":\[$/, '"types":[]')}}`);
      if (head?.layout !== 'lines') return this.parseWhole(buf.toString('utf8', 0, got));
      const snap = this.parseLines(buf.subarray(0, got), first + 1, head);
      keep = true;
      this.replaceFd(fd);
      return snap;
    } finally {
      if (!keep) fs.closeSync(fd);
    }
  }

  /** A file of another layout (an earlier build's): read whole; its resources have no handles. */
  private parseWhole(text: string): XdsSnapshot {
    const f = JSON.parse(text) as FileShape;
    checkHeader(f, this.path);
    if (!Array.isArray(f.types)) throw new Error(`${this.path} is not a saved xDS config of this version`);
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

  private parseLines(buf: Buffer, from: number, head: Header): XdsSnapshot {
    checkHeader(head, this.path);
    const bad = (why: string): Error => new Error(`${this.path} is not a saved xDS config of this version: ${why}`);
    const snap: XdsSnapshot = { node: head.node, savedAt: head.savedAt, types: [] };
    const at: number[] = [];
    const len: number[] = [];
    let cur: XdsSnapshot['types'][number] | null = null;
    let pos = from;
    let ended = false;
    while (pos < buf.length) {
      let end = buf.indexOf(NEWLINE, pos);
      if (end < 0) end = buf.length;
      const lineEnd = end;
      if (buf[end - 1] === COMMA) end--;
      const line = buf.toString('utf8', pos, end);
      if (line === ']}' && cur) {
        snap.types.push(cur);
        cur = null;
      } else if (line === ']}' && !cur) {
        ended = true;
      } else if (!cur) {
        const t = parseOr<TypeHeader>(`${line}]}`);
        if (typeof t?.typeUrl !== 'string' || typeof t.versionInfo !== 'string') throw bad(`line at byte ${pos}`);
        cur = { typeUrl: t.typeUrl, versionInfo: t.versionInfo, resources: [] };
      } else {
        const r = parseOr<FileResource>(line);
        if (typeof r?.name !== 'string' || typeof r.version !== 'string' || typeof r.typeUrl !== 'string' || typeof r.value !== 'string') throw bad(`resource at byte ${pos}`);
        cur.resources.push({ name: r.name, version: r.version, any: { type_url: r.typeUrl, value: Buffer.from(r.value, 'base64') }, saved: at.length });
        at.push(pos);
        len.push(end - pos);
      }
      pos = lineEnd + 1;
    }
    if (!ended || cur) throw bad('it ends early');
    this.at = Float64Array.from(at);
    this.len = Uint32Array.from(len);
    return snap;
  }

  /**
   * Atomic replace, root-only: it carries the mesh's policies. A resource given without bytes is copied from the
   * current file by its handle. Returns every resource's handle in the new file (per type, in the order given).
   */
  save(s: XdsSnapshot): number[][] {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w+', 0o600);
    let done = false;
    try {
      fs.fchmodSync(fd, 0o600); // a stale temp file of a recycled pid keeps its old mode through 'w+'
      const out = new ChunkWriter(fd);
      const at: number[] = [];
      const len: number[] = [];
      const handles: number[][] = [];
      const header: Header = { version: 1, node: s.node, savedAt: s.savedAt, layout: 'lines' };
      out.text(`${JSON.stringify(header).slice(0, -1)},"types":[\n`);
      s.types.forEach((t, ti) => {
        const typeHeader: TypeHeader = { typeUrl: t.typeUrl, versionInfo: t.versionInfo };
        out.text(`${JSON.stringify(typeHeader).slice(0, -1)},"resources":[\n`);
        const hs: number[] = [];
        t.resources.forEach((r, ri) => {
          const start = out.position;
          if (r.any) {
            // A FileResource written in parts: the value's base64 needs no JSON escaping, and a JSON.stringify of the
            // whole record (and a copy of the bytes to get a Buffer) was a second copy of every new resource.
            const v: Uint8Array = r.any.value;
            const b64 = (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)).toString('base64');
            out.text(`{"name":${JSON.stringify(r.name)},"version":${JSON.stringify(r.version)},"typeUrl":${JSON.stringify(r.any.type_url)},"value":"`);
            out.text(b64);
            out.text('"}');
          } else if (r.saved !== undefined && this.fd !== null && r.saved < this.at.length) {
            out.copy(this.fd, this.at[r.saved]!, this.len[r.saved]!);
          } else {
            throw new Error(`resource ${r.name} has neither bytes nor a place in ${this.path}`);
          }
          hs.push(at.length);
          at.push(start);
          len.push(out.position - start);
          out.text(ri < t.resources.length - 1 ? ',\n' : '\n');
        });
        handles.push(hs);
        out.text(ti < s.types.length - 1 ? ']},\n' : ']}\n');
      });
      out.text(']}\n');
      out.flush();
      fs.renameSync(tmp, this.path);
      done = true;
      this.replaceFd(fd);
      this.at = Float64Array.from(at);
      this.len = Uint32Array.from(len);
      return handles;
    } finally {
      if (!done) {
        fs.closeSync(fd);
        fs.rmSync(tmp, { force: true });
      }
    }
  }

  /** Forgets the file (its handles with it). */
  close(): void {
    this.replaceFd(null);
    this.at = new Float64Array(0);
    this.len = new Uint32Array(0);
  }

  private replaceFd(fd: number | null): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = fd;
  }
}

function checkHeader(h: Partial<Header> | null, file: string): asserts h is Header {
  if (h?.version !== 1 || typeof h.node !== 'string') throw new Error(`${file} is not a saved xDS config of this version`);
}

function parseOr<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/** Sequential writes in chunks, and copies of ranges of another file. */
class ChunkWriter {
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  /**
   * Bytes of the file copied from, read ahead: a save copies thousands of resources, mostly in the order the
   * file has them, and a read per resource was a third of a save at 10,000 Services.
   */
  private ahead: Buffer | null = null;
  private aheadFd = -1;
  private aheadAt = 0;
  private aheadLen = 0;
  /** Bytes written so far (flushed or not). */
  position = 0;

  constructor(private readonly fd: number) {}

  text(s: string): void {
    const n = Buffer.byteLength(s);
    if (n > CHUNK) {
      this.flush();
      this.writeAll(Buffer.from(s));
    } else {
      if (this.used + n > CHUNK) this.flush();
      this.buf.write(s, this.used);
      this.used += n;
    }
    this.position += n;
  }

  copy(from: number, offset: number, length: number): void {
    if (length > CHUNK) {
      this.flush();
      const b = Buffer.allocUnsafe(length);
      readExactly(from, b, 0, length, offset);
      this.writeAll(b);
    } else {
      if (this.used + length > CHUNK) this.flush();
      if (from !== this.aheadFd || offset < this.aheadAt || offset + length > this.aheadAt + this.aheadLen) this.readAhead(from, offset, length);
      this.ahead!.copy(this.buf, this.used, offset - this.aheadAt, offset - this.aheadAt + length);
      this.used += length;
    }
    this.position += length;
  }

  /** Fills the read-ahead buffer from `offset`: at least `length` bytes, as many as the file has up to CHUNK. */
  private readAhead(fd: number, offset: number, length: number): void {
    this.ahead ??= Buffer.allocUnsafe(CHUNK);
    this.aheadFd = fd;
    this.aheadAt = offset;
    this.aheadLen = readUpTo(fd, this.ahead, 0, CHUNK, offset);
    if (this.aheadLen < length) throw endedBefore(offset + length);
  }

  flush(): void {
    if (this.used > 0) this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  private writeAll(b: Buffer): void {
    let off = 0;
    while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off);
  }
}

/** Reads up to `length` bytes at `position` into `into` at `at`; fewer only where the file ends. */
function readUpTo(fd: number, into: Buffer, at: number, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, into, at + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function readExactly(fd: number, into: Buffer, at: number, length: number, position: number): void {
  if (readUpTo(fd, into, at, length, position) < length) throw endedBefore(position + length);
}

function endedBefore(byte: number): Error {
  return new Error(`the saved xDS config ended before byte ${byte}: it was changed by something else`);
}
