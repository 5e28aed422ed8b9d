// One enrolled pod: its listeners, sk_lookup link, steering entries and "on" entry, set up and torn down in order.

import path from 'node:path';
import { closeFdQuietly } from '../util/fd';
import { teardownSteps } from '../util/teardown';
import * as abi from './abi';
import { DatapathError, errnoCode, nativeHint } from './errors';
import type { NativeBinding, NativeBpfMap, NativeBpfObject, NativeNetnsThread } from './native';
import { SocketPool } from './socket-pool';
import { TRANSPARENT_ROUTE_TABLE, TRANSPARENT_RULE_PRIORITY, type AttachedProgram, type PodDatapath, type PodListeners, type PodNetSpec, type PodWorkerShare, type SocketAddress, type TransparentSocket } from './types';

export interface DatapathLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** What a pod needs from the open datapath. */
export interface PodContext extends TupleDstReader {
  readonly native: NativeBinding;
  readonly obj: NativeBpfObject;
  readonly thread: NativeNetnsThread;
  readonly pods: NativeBpfMap;
  readonly steer: NativeBpfMap;
  readonly ownFlows: NativeBpfMap;
  readonly pinRoot: string;
  readonly log: DatapathLogger;
  /** nm_reuseport_migrate, attached to each listener's SO_REUSEPORT group (bpf/reuseport.c). */
  readonly reuseportProgFd: number;
  isClosed(): boolean;
  /** uid of the enrolled pod that already owns this netns, if any. */
  netnsOwner(netnsCookie: bigint): string | undefined;
}

const LISTEN_BACKLOG = 4096;
/** Ready client sockets per pod and family (refilled in batches below half of this, see SocketPool). */
export const POOL_TARGET = 8;

/** The tuple map and the preallocated key/value buffers one thread reads it with (once per outbound connection). */
export interface TupleDstReader {
  readonly tupleDst: NativeBpfMap;
  readonly hotKey: Buffer;
  readonly hotOut: Buffer;
}

/**
 * The original destination BPF recorded for a connection accepted on 15001 in the pod netns `netnsCookie`,
 * consuming the entry; null when nothing was recorded.
 */
export function takeOriginalDst(r: TupleDstReader, netnsCookie: bigint, peer: SocketAddress, local: SocketAddress): SocketAddress | null {
  // a socket reset before we asked has no addresses any more
  if (typeof peer.ip !== 'string' || typeof local.ip !== 'string') return null;
  if (!abi.writeTupleKey(r.hotKey, netnsCookie, peer, local)) return null;
  if (!r.tupleDst.lookupAndDelete(r.hotKey, r.hotOut)) return null;
  const a = abi.readAddr(r.hotOut, 0);
  return { ip: a.ip, port: a.port };
}

/**
 * The value of this process's nm_own_flows entries: a tag of the agent (1-255, from its pid) so that entries an
 * agent left behind when it was killed mid-connect can be told from another agent's live ones.
 */
export function ownFlowTag(pid = process.pid): number {
  return (pid % 255) + 1;
}
const OWN_FLOW_VALUE = Buffer.from([ownFlowTag()]);

/**
 * A pooled transparent socket bound to `from` with a port the kernel picks, its flow to `to` registered in
 * nm_own_flows until `connected()`. On any failure the socket is closed and the error passed on.
 */
export async function takeTransparent(native: NativeBinding, pool: SocketPool, ownFlows: NativeBpfMap, family: 4 | 6, from: string, to: SocketAddress): Promise<TransparentSocket> {
  const fd = await pool.take(family);
  const key = Buffer.alloc(abi.NM_TUPLE_KEY.size);
  try {
    const port = native.bindAddress(fd, from);
    // netns cookie 0: pod IPs are unique on a node, and sk_lookup keys by addresses alone
    if (!abi.writeTupleKey(key, 0n, { ip: from, port }, to)) throw new Error(`cannot encode the flow ${from}:${port} -> ${to.ip}:${to.port}`);
    ownFlows.update(key, OWN_FLOW_VALUE);
  } catch (err) {
    closeFdQuietly(fd);
    throw err;
  }
  let done = false;
  return {
    fd,
    connected: () => {
      if (done) return;
      done = true;
      ownFlows.delete(key);
    },
  };
}

/** Pin path of a pod's sk_lookup link. The uid is sanitised: it becomes a bpffs file name. */
export function skLookupPin(pinRoot: string, uid: string): string {
  return path.join(pinRoot, 'links', `sk_lookup-${uid.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
}

interface SteerEntry {
  ip: string;
  family: 4 | 6;
  key: Buffer;
  /** SO_COOKIE of the listener we stored: only delete the entry while it still points at our socket. */
  socketCookie: bigint;
}

export class PodHandle implements PodDatapath {
  constructor(
    private readonly ctx: PodContext,
    readonly uid: string,
    readonly netnsPath: string,
    readonly netnsFd: number,
    readonly netnsCookie: bigint,
    readonly listeners: PodListeners,
    readonly ips: string[],
    readonly link: AttachedProgram,
    readonly steerEntries: SteerEntry[],
    private readonly pool: SocketPool,
    readonly transparent: { 4: boolean; 6: boolean },
    private readonly transparentPool: SocketPool | null,
  ) {}

  newSocket(family: 4 | 6): Promise<number> {
    if (family !== 4 && family !== 6) return Promise.reject(new TypeError(`family must be 4 or 6, got ${String(family)}`));
    return this.pool.take(family);
  }

  transparentSocket(family: 4 | 6, from: string, to: SocketAddress): Promise<TransparentSocket> | null {
    if (!this.transparent[family] || !this.transparentPool) return null;
    return takeTransparent(this.ctx.native, this.transparentPool, this.ctx.ownFlows, family, from, to);
  }

  originalDst(peer: SocketAddress, local: SocketAddress): SocketAddress | null {
    const ctx = this.ctx;
    if (ctx.isClosed()) return null; // a closed datapath has no maps
    return takeOriginalDst(ctx, this.netnsCookie, peer, local);
  }

  shareWithWorker(opts: { hbone: boolean }): PodWorkerShare {
    const { native } = this.ctx;
    const copies: number[] = [];
    const dup = (fds: (number | null)[]): number[] =>
      fds.flatMap((fd) => {
        if (fd === null) return [];
        copies.push(native.dupFd(fd));
        return [copies[copies.length - 1]!];
      });
    try {
      const l = this.listeners;
      return {
        uid: this.uid,
        netnsFd: dup([this.netnsFd])[0]!,
        netnsCookie: this.netnsCookie,
        ipv6: l.outbound6 !== null || l.inbound6 !== null,
        transparent: { ...this.transparent },
        listeners: {
          outbound: dup([l.outbound4, l.outbound6]),
          inbound: dup([l.inbound4, l.inbound6]),
          hbone: opts.hbone ? dup([l.hbone4, l.hbone6]) : [],
        },
      };
    } catch (err) {
      for (const fd of copies) native.closeFd(fd);
      throw err;
    }
  }

  /** Unenroll: "on" entry first (new connects go direct at once), then steering, then the link. */
  teardown(): void {
    const { ctx } = this;
    const { attempt, errors } = teardownSteps();
    attempt(() => ctx.pods.delete(abi.u64Key(this.netnsCookie)));
    for (const e of this.steerEntries) attempt(() => deleteSteer(ctx, e));
    attempt(() => ctx.native.linkDetach(skLookupPin(ctx.pinRoot, this.uid)));
    if (this.transparent[4] || this.transparent[6]) {
      // the job holds its own copy of the netns fd: released below, it still runs in the pod's netns
      const uid = this.uid;
      void ctx.thread
        .podRouting(this.netnsFd, false, abi.NM_AGENT_MARK_TRANSPARENT, TRANSPARENT_ROUTE_TABLE, TRANSPARENT_RULE_PRIORITY)
        .then((r) => (r.v4 || r.v6) && ctx.log.warn({ uid, v4: r.v4, v6: r.v6 }, 'removing the pod\'s policy routing for transparent sockets failed'))
        .catch((err: unknown) => ctx.log.warn({ err, uid }, 'removing the pod\'s policy routing for transparent sockets failed'));
    }
    this.release();
    if (errors.length) {
      throw new DatapathError('NM_DATAPATH_MAP', `unenrolling pod ${this.uid} left state behind: ${(errors[0] as Error).message}`, {
        cause: errors[0],
        hint: 'a restart reconcile (pruneExcept) removes it',
      });
    }
  }

  /** Points the pod's steering entries at this agent's 15006 listeners again (they are still open). */
  reassertSteering(): void {
    for (const e of this.steerEntries) {
      const fd = e.family === 4 ? this.listeners.inbound4 : this.listeners.inbound6;
      if (fd !== null) this.ctx.steer.updateSocket(e.key, fd);
    }
  }

  /**
   * NM_POD_DRAINING on the pod's entry (connect4/6 treat the listener as gone), and its steering entries removed
   * while they still point at this agent (sk_lookup lets inbound reach the app).
   */
  markDraining(): void {
    const key = abi.u64Key(this.netnsCookie);
    const cur = Buffer.alloc(abi.NM_POD.size);
    if (this.ctx.pods.lookup(key, cur)) {
      const v = abi.decodePod(cur);
      this.ctx.pods.update(key, abi.encodePod({ ...v, flags: v.flags | abi.NM_POD_DRAINING }));
    }
    for (const e of this.steerEntries) deleteSteer(this.ctx, e);
  }

  /** Releases handles only; pinned state stays (restart adoption). Listener fds belong to the caller. */
  release(): void {
    this.pool.close();
    this.transparentPool?.close();
    try {
      this.ctx.native.closeFd(this.netnsFd);
    } catch (err) {
      this.ctx.log.warn({ err, uid: this.uid }, 'closing pod netns fd failed');
    }
  }
}

function deleteSteer(ctx: PodContext, e: SteerEntry): void {
  // A sockhash lookup from userspace yields the socket cookie. If the entry now belongs to another
  // listener (the IP moved to a new pod), leave it alone.
  const cur = Buffer.alloc(ctx.steer.valueBufferSize);
  if (!ctx.steer.lookup(e.key, cur)) return;
  if (cur.length === 8 && cur.readBigUInt64LE(0) !== e.socketCookie) return;
  ctx.steer.delete(e.key);
}

function validate(spec: PodNetSpec): void {
  const bad = (m: string): never => {
    throw new DatapathError('NM_DATAPATH_BAD_SPEC', `invalid pod spec: ${m}`);
  };
  if (!spec || typeof spec !== 'object') bad('spec must be an object');
  if (typeof spec.uid !== 'string' || spec.uid === '') bad('uid must be a non-empty string');
  if (typeof spec.netnsPath !== 'string' || spec.netnsPath === '') bad('netnsPath must be a non-empty string');
  if (!Array.isArray(spec.ips)) bad('ips must be an array of IP strings');
  for (const ip of spec.ips) if (typeof ip !== 'string' || abi.writeIp(Buffer.alloc(16), 0, ip) === 0) bad(`"${String(ip)}" is not an IP address`);
  if (typeof spec.failClosed !== 'boolean') bad('failClosed must be a boolean');
}

/**
 * The pod netns's policy routing for replies to the agent's transparent sockets (see native/src/pod_routing.cc):
 * per family, whether it is in place. Where the kernel refuses, the agent connects to the application from the
 * pod's own address, as before, and says so once here.
 */
async function podRouting(ctx: PodContext, nsfd: number, spec: PodNetSpec, ipv6: boolean): Promise<{ 4: boolean; 6: boolean }> {
  let r;
  try {
    r = await ctx.thread.podRouting(nsfd, true, abi.NM_AGENT_MARK_TRANSPARENT, TRANSPARENT_ROUTE_TABLE, TRANSPARENT_RULE_PRIORITY);
  } catch (err) {
    ctx.log.warn({ err, uid: spec.uid }, 'cannot set up the pod netns for transparent upstream sockets: its applications will see the pod\'s own address as the peer');
    return { 4: false, 6: false };
  }
  const out = { 4: r.sysctl === null && r.v4 === null, 6: ipv6 && r.sysctl === null && r.v6 === null };
  if (!out[4] || (ipv6 && !out[6])) {
    ctx.log.warn(
      { uid: spec.uid, sysctl: r.sysctl, v4: r.v4, v6: ipv6 ? r.v6 : undefined },
      'the kernel refused part of the pod netns setup for transparent upstream sockets: for that family its applications see the pod\'s own address as the peer',
    );
  }
  return out;
}

/**
 * Enrolls a pod in the order that keeps the kernel consistent at every step: listeners exist before
 * anything can point at them, and the nm_pods "on" entry comes last so connect4/6 never redirect into a
 * half-built pod. Every step registers its undo; any failure unwinds them in reverse and throws.
 */
export async function enrollPod(ctx: PodContext, spec: PodNetSpec): Promise<PodHandle> {
  validate(spec);
  const { native, thread, log } = ctx;
  const undo: { what: string; fn: () => void }[] = [];
  const closeFdUndo = (fd: number, what: string): void => {
    undo.push({ what, fn: () => native.closeFd(fd) });
  };
  try {
    let nsfd: number;
    try {
      nsfd = native.openNetns(spec.netnsPath);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') {
        throw new DatapathError('NM_DATAPATH_NETNS_MISSING', `network namespace ${spec.netnsPath} does not exist`, {
          hint: 'is the pod sandbox still running?',
          cause: err,
        });
      }
      throw new DatapathError('NM_DATAPATH_NETNS', `cannot open network namespace ${spec.netnsPath}: ${(err as Error).message}`, { cause: err });
    }
    closeFdUndo(nsfd, 'netns fd');

    const listen = async (family: 4 | 6, ip: string, port: number, optional: boolean): Promise<number | null> => {
      try {
        const fd = await thread.listen(nsfd, family, ip, port, LISTEN_BACKLOG, abi.NM_AGENT_MARK, family === 6, ctx.reuseportProgFd);
        closeFdUndo(fd, `listener ${ip}:${port}`);
        return fd;
      } catch (err) {
        const code = errnoCode(err);
        // no IPv6 in this pod (disabled, or no ::1): serve IPv4 only
        if (optional && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) return null;
        throw new DatapathError('NM_DATAPATH_LISTEN', `cannot listen on ${family === 6 ? `[${ip}]` : ip}:${port} in ${spec.netnsPath}: ${(err as Error).message}`, {
          hint: nativeHint(err),
          cause: err,
        });
      }
    };
    const outbound4 = (await listen(4, '127.0.0.1', abi.NM_PORT_OUTBOUND, false))!;
    const outbound6 = await listen(6, '::1', abi.NM_PORT_OUTBOUND, true);
    const inbound4 = (await listen(4, '0.0.0.0', abi.NM_PORT_INBOUND, false))!;
    const inbound6 = await listen(6, '::', abi.NM_PORT_INBOUND, true);
    // HBONE is addressed to the pod's 15008 directly (sk_lookup never steers it): a wildcard bind suffices.
    const hbone4 = (await listen(4, '0.0.0.0', abi.NM_PORT_HBONE, false))!;
    const hbone6 = await listen(6, '::', abi.NM_PORT_HBONE, true);
    const netnsCookie = native.socketNetnsCookie(outbound4);
    // two uids on one netns would share one nm_pods entry: unenrolling either would switch both off
    const owner = ctx.netnsOwner(netnsCookie);
    if (owner !== undefined) {
      throw new DatapathError('NM_DATAPATH_POD_EXISTS', `network namespace ${spec.netnsPath} is already enrolled as pod ${owner}`, {
        hint: 'each pod sandbox has its own netns; is the CNI passing the right path?',
      });
    }

    const pin = skLookupPin(ctx.pinRoot, spec.uid);
    let res;
    try {
      res = ctx.obj.attachNetns('nm_sk_lookup', nsfd, pin);
    } catch (err) {
      throw new DatapathError('NM_DATAPATH_ATTACH', `cannot attach sk_lookup to ${spec.netnsPath}: ${(err as Error).message}`, {
        hint: nativeHint(err),
        cause: err,
      });
    }
    undo.push({ what: 'sk_lookup link', fn: () => native.linkDetach(pin) });
    const link: AttachedProgram = {
      name: 'nm_sk_lookup',
      attachType: 'sk_lookup',
      target: spec.netnsPath,
      programId: res.programId,
      linkId: res.linkId,
      adopted: res.adopted,
    };

    const steerEntries: SteerEntry[] = [];
    for (const ip of spec.ips) {
      const k = abi.steerKey(ip, abi.NM_STEER_INBOUND)!;
      const fd = k.family === 4 ? inbound4 : inbound6;
      if (fd === null) {
        log.warn({ uid: spec.uid, ip }, 'pod has an IPv6 address but its netns has no IPv6 listener: inbound to it is not captured');
        continue;
      }
      try {
        ctx.steer.updateSocket(k.key, fd);
      } catch (err) {
        throw new DatapathError('NM_DATAPATH_MAP', `cannot register inbound steering for ${ip}: ${(err as Error).message}`, { cause: err });
      }
      const entry: SteerEntry = { ip, family: k.family, key: k.key, socketCookie: native.socketCookie(fd) };
      undo.push({ what: `steer ${ip}`, fn: () => deleteSteer(ctx, entry) });
      steerEntries.push(entry);
    }

    // Last: the "on" switch. A pod known from a previous run keeps its counters.
    const podKey = abi.u64Key(netnsCookie);
    const cur = Buffer.alloc(abi.NM_POD.size);
    const prev = ctx.pods.lookup(podKey, cur) ? abi.decodePod(cur) : null;
    const flags = abi.NM_POD_ENROLLED | (spec.failClosed ? abi.NM_POD_FAIL_CLOSED : 0);
    try {
      ctx.pods.update(podKey, abi.encodePod({ redirected: 0n, failOpen: 0n, failClosedDenied: 0n, ...prev, flags }));
    } catch (err) {
      throw new DatapathError('NM_DATAPATH_MAP', `cannot write the nm_pods entry for ${spec.uid}: ${(err as Error).message}`, { cause: err });
    }

    const ipv6 = outbound6 !== null || inbound6 !== null;
    const pool = new SocketPool(native, thread, nsfd, abi.NM_AGENT_MARK, { 4: POOL_TARGET, 6: ipv6 ? POOL_TARGET : 0 }, log, spec.uid);
    pool.prefill();
    const transparent = await podRouting(ctx, nsfd, spec, ipv6);
    const tpool = transparent[4] || transparent[6]
      ? new SocketPool(native, thread, nsfd, abi.NM_AGENT_MARK_TRANSPARENT, { 4: transparent[4] ? POOL_TARGET : 0, 6: transparent[6] ? POOL_TARGET : 0 }, log, spec.uid, true)
      : null;
    tpool?.prefill();
    const listeners: PodListeners = { outbound4, outbound6, inbound4, inbound6, hbone4, hbone6 };
    log.info(
      { uid: spec.uid, netns: spec.netnsPath, netnsCookie: netnsCookie.toString(), ips: spec.ips, failClosed: spec.failClosed, skLookup: link.adopted ? 'adopted' : 'attached', linkId: link.linkId, transparent },
      'pod enrolled in datapath',
    );
    return new PodHandle(ctx, spec.uid, spec.netnsPath, nsfd, netnsCookie, listeners, spec.ips, link, steerEntries, pool, transparent, tpool);
  } catch (err) {
    for (const u of undo.reverse()) {
      try {
        u.fn();
      } catch (e) {
        log.error({ err: e, uid: spec.uid, step: u.what }, 'enroll rollback step failed');
      }
    }
    throw err;
  }
}
