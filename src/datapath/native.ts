// Typed layer over nodemesh.node (native/): the only file that loads the addon.

import fs from 'node:fs';
import path from 'node:path';
import { DatapathError } from './errors';

/** One BPF map, addressed with Buffers laid out as in bpf/include/nodemesh_abi.h. */
export interface NativeBpfMap {
  readonly name: string;
  /** libbpf's map type name: 'hash', 'lru_hash', 'sockhash', 'array', 'percpu_array', ... */
  readonly type: string;
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  /** Bytes a value Buffer must have: valueSize, or one 8-byte-aligned slot per possible CPU for per-CPU maps. */
  readonly valueBufferSize: number;
  readonly possibleCpus: number;
  readonly maxEntries: number;
  /** Copies the value into `out`; false when the key is absent. */
  lookup(key: Buffer, out: Buffer): boolean;
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** False when there was nothing to delete. */
  delete(key: Buffer): boolean;
  /** Atomically reads and removes an entry into the caller's `out` Buffer (no allocation). */
  lookupAndDelete(key: Buffer, out: Buffer): boolean;
  keys(): Buffer[];
  count(): number;
  /** SOCKHASH/SOCKMAP: store the socket behind `socketFd` (the map holds the socket, not the fd). */
  updateSocket(key: Buffer, socketFd: number, flags?: number): void;
  close(): void;
}

export interface NativeProgram {
  name: string;
  section: string;
  type: string;
  attachType: string;
  id: number;
}

export interface NativeAttachResult {
  linkId: number;
  programId: number;
  /** True when an existing pinned link was updated in place instead of attaching anew. */
  adopted: boolean;
}

export interface NativeBpfObject {
  programs(): NativeProgram[];
  map(name: string): NativeBpfMap;
  attachCgroup(programName: string, cgroupPath: string, pinPath: string): NativeAttachResult;
  attachNetns(programName: string, netnsFd: number, pinPath: string): NativeAttachResult;
  /** A copy of a loaded program's fd that the caller owns (and closes). */
  programFd(programName: string): number;
  close(): void;
}

export interface NativeLinkInfo {
  id: number;
  programId: number;
  programName: string;
  type: string;
  attachType?: string;
  cgroupId?: bigint;
  netnsIno?: bigint;
}

/** Per part of a pod's policy routing, what failed (null: it worked). */
export interface NativeRoutingResult {
  sysctl: string | null;
  v4: string | null;
  v6: string | null;
}

/** The dedicated namespace-switching thread: every socket method resolves to an fd the caller owns. */
export interface NativeNetnsThread {
  /** With `reuseportProgFd`, the program is attached to the listener's SO_REUSEPORT group after listen(). */
  listen(netnsFd: number, family: 4 | 6, ip: string, port: number, backlog: number, mark: number, v6only: boolean, reuseportProgFd?: number): Promise<number>;
  /** `transparent`: IP_TRANSPARENT, so it can bind to a client's address (bindAddress). */
  socket(netnsFd: number, family: 4 | 6, mark: number, transparent?: boolean): Promise<number>;
  /** `count` sockets as socket() makes them, in one job (one queue hop, one setns); all or nothing. */
  sockets(netnsFd: number, family: 4 | 6, mark: number, count: number, transparent?: boolean): Promise<number[]>;
  /**
   * add: net.ipv4.tcp_fwmark_accept=1 and, per family, "fwmark MARK lookup TABLE" at PRIORITY plus "local default
   * dev lo table TABLE" (idempotent); !add: removes the rules and routes.
   */
  podRouting(netnsFd: number, add: boolean, mark: number, table: number, priority: number): Promise<NativeRoutingResult>;
  close(): void;
}

/**
 * Raw fds a thread holds outside any libuv handle. Whatever is still adopted when the thread's environment is
 * torn down (even by worker.terminate(), which runs no more JavaScript) is closed by the native destructor.
 */
export interface NativeFdLedger {
  adopt(fd: number): void;
  /** A handle (or the caller) owns it from now on; false if it was not held. */
  release(fd: number): boolean;
  /** Closes it, held or not, ignoring "not open". */
  close(fd: number): void;
  readonly size: number;
}

export interface NativeBinding {
  BpfObject: new (objectPath: string, pinRoot: string) => NativeBpfObject;
  BpfMap: { openPinned(path: string): NativeBpfMap };
  NetnsThread: new () => NativeNetnsThread;
  FdLedger: new () => NativeFdLedger;
  linkInfo(pinPath: string): NativeLinkInfo | null;
  /** Detaches the pinned link from its hook and unpins it; false when nothing was pinned there. */
  linkDetach(pinPath: string): boolean;
  programInfo(id: number): { id: number; name: string; type: string } | null;
  /** fd of a network namespace; throws ENOENT with a "is the pod sandbox still running?" hint. */
  openNetns(path: string): number;
  closeFd(fd: number): void;
  /** A close-on-exec copy of `fd` that the caller owns. */
  dupFd(fd: number): number;
  fdInode(fd: number): bigint;
  socketNetnsCookie(fd: number): bigint;
  socketCookie(fd: number): bigint;
  mountBpffs(target: string): void;
  /** Takes a shared or exclusive flock on an open file without waiting; false when another holder prevents it. */
  flock(fd: number, exclusive: boolean): boolean;
  /** Binds an unconnected socket to `ip` (a client's, for a transparent socket) and returns the port the kernel chose. */
  bindAddress(fd: number, ip: string): number;
  numPossibleCpus(): number;
  libbpfVersion(): string;
  /**
   * A full, compacting GC of the calling thread's V8 heap, then glibc's free pages (all arenas) back to the
   * kernel; answers whether glibc released any. For after a burst of short-lived connections, not for routine use.
   */
  relieveMemory(): boolean;
}

/** The repository root (where package.json lives), from either src/ or the compiled dist/src/. */
export function repoRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'native'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..');
}

export function defaultAddonPath(): string {
  return process.env.NODEMESH_NATIVE ?? path.join(repoRoot(), 'native', 'build', 'Release', 'nodemesh.node');
}

export function defaultObjectPath(): string {
  return path.join(repoRoot(), 'bpf', 'build', 'nodemesh.bpf.o');
}

let cached: NativeBinding | null = null;

export function loadNative(addonPath = defaultAddonPath()): NativeBinding {
  if (cached) return cached;
  if (!fs.existsSync(addonPath)) {
    throw new DatapathError('NM_DATAPATH_NO_ADDON', `native addon not found at ${addonPath}`, {
      hint: 'build it with "npm run build:native" (needs cmake, g++, libbpf-dev)',
    });
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(addonPath) as NativeBinding;
  } catch (err) {
    throw new DatapathError('NM_DATAPATH_NO_ADDON', `native addon ${addonPath} failed to load: ${(err as Error).message}`, {
      hint: 'rebuild it for this Node version with "npm run build:native"',
      cause: err,
    });
  }
  return cached;
}
