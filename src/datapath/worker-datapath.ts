// A data-plane worker thread's own handles on the datapath: the tuple map, a netns thread, per-pod socket pools.
// The main thread owns enrollment and every pinned object; a worker only reads and creates sockets.

import { releaseFd } from '../util/fd';
import * as abi from './abi';
import { loadNative, type NativeBinding, type NativeBpfMap, type NativeNetnsThread } from './native';
import { POOL_TARGET, takeOriginalDst, takeTransparent, type TupleDstReader } from './pod-datapath';
import { SocketPool, type PoolLogger } from './socket-pool';
import type { DatapathWorkerShare, PodWorkerShare, SocketAddress, TransparentSocket } from './types';

export class WorkerDatapath implements TupleDstReader {
  readonly tupleDst: NativeBpfMap;
  readonly ownFlows: NativeBpfMap;
  readonly hotKey = Buffer.alloc(abi.NM_TUPLE_KEY.size);
  readonly hotOut = Buffer.alloc(abi.NM_ADDR.size);
  private readonly native: NativeBinding;
  private readonly thread: NativeNetnsThread;
  private closed = false;

  constructor(share: DatapathWorkerShare, private readonly log: PoolLogger) {
    this.native = loadNative();
    this.tupleDst = this.native.BpfMap.openPinned(share.tupleDstPin);
    this.ownFlows = this.native.BpfMap.openPinned(share.ownFlowsPin);
    this.thread = new this.native.NetnsThread();
  }

  /** The pod's sockets as this thread sees them; takes ownership of the shared netns fd. */
  pod(share: PodWorkerShare): WorkerPodSockets {
    const targets = { 4: POOL_TARGET, 6: share.ipv6 ? POOL_TARGET : 0 };
    const pool = new SocketPool(this.native, this.thread, share.netnsFd, abi.NM_AGENT_MARK, targets, this.log, share.uid);
    pool.prefill();
    const t = share.transparent;
    const tpool = t[4] || t[6]
      ? new SocketPool(this.native, this.thread, share.netnsFd, abi.NM_AGENT_MARK_TRANSPARENT, { 4: t[4] ? POOL_TARGET : 0, 6: t[6] ? POOL_TARGET : 0 }, this.log, share.uid, true)
      : null;
    tpool?.prefill();
    return new WorkerPodSockets(this, this.native, share, pool, tpool);
  }

  isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.thread.close();
    this.tupleDst.close();
    this.ownFlows.close();
  }
}

export class WorkerPodSockets {
  private released = false;

  constructor(
    private readonly dp: WorkerDatapath,
    private readonly native: NativeBinding,
    private readonly share: PodWorkerShare,
    private readonly pool: SocketPool,
    private readonly transparentPool: SocketPool | null,
  ) {}

  newSocket(family: 4 | 6): Promise<number> {
    return this.pool.take(family);
  }

  transparentSocket(family: 4 | 6, from: string, to: SocketAddress): Promise<TransparentSocket> | null {
    if (!this.share.transparent[family] || !this.transparentPool || this.released) return null;
    return takeTransparent(this.native, this.transparentPool, this.dp.ownFlows, family, from, to);
  }

  originalDst(peer: SocketAddress, local: SocketAddress): SocketAddress | null {
    if (this.released || this.dp.isClosed()) return null;
    return takeOriginalDst(this.dp, this.share.netnsCookie, peer, local);
  }

  /** The pod left this worker: pooled sockets and the netns fd are closed (listener fds belong to its PodProxy). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.pool.close();
    this.transparentPool?.close();
    this.native.closeFd(releaseFd(this.share.netnsFd));
  }
}
