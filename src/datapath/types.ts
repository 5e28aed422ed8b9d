// The datapath contract the agent programs against: what eBPF + the native addon give the proxy.
// The real implementation lives in `datapath.ts`; tests may substitute a fake.

/** Well-known ports (ztunnel's numbers). Mirrored in bpf/include/nodemesh_abi.h. */
export const PORT_OUTBOUND = 15001;
export const PORT_INBOUND = 15006;
export const PORT_HBONE = 15008;
/** SO_MARK the agent puts on its own sockets so the BPF programs never redirect them. */
export const AGENT_MARK = 1337;
/** Routing table, and rule priority, in each pod netns for replies to the agent's transparent sockets. */
export const TRANSPARENT_ROUTE_TABLE = 1338;
export const TRANSPARENT_RULE_PRIORITY = 32700;

export interface DatapathOptions {
  /** bpffs directory holding this agent's pinned maps and links (e.g. /sys/fs/bpf/nodemesh/v1). */
  pinRoot: string;
  /** cgroup v2 directory the cgroup programs (connect4/6, sockops) are attached to. */
  cgroupRoot: string;
  /** Path of the compiled BPF object; defaults to the one built in bpf/. */
  objectPath?: string;
}

export interface PodNetSpec {
  uid: string;
  /** Path of the pod's network namespace (e.g. /run/netns/x or /proc/PID/ns/net). */
  netnsPath: string;
  /** The pod's IPs (v4 and/or v6); inbound steering is keyed by them. */
  ips: string[];
  /** When true and the agent's listener is gone, connects are refused instead of going direct. */
  failClosed: boolean;
}

/** Listening sockets created inside the pod netns, handed over as fds: the caller owns and closes them. */
export interface PodListeners {
  /** 127.0.0.1:15001 */
  outbound4: number;
  /** [::1]:15001, when the netns has IPv6 loopback */
  outbound6: number | null;
  /** 0.0.0.0:15006 (steered to by sk_lookup) */
  inbound4: number;
  /** [::]:15006 v6only, when the netns has IPv6 */
  inbound6: number | null;
  /** 0.0.0.0:15008: HBONE (mTLS HTTP/2 CONNECT) from other nodes' agents */
  hbone4: number;
  /** [::]:15008 v6only, when the netns has IPv6 */
  hbone6: number | null;
}

export interface SocketAddress {
  ip: string;
  port: number;
}

export interface PodDatapath {
  readonly uid: string;
  /** The pod netns cookie (SO_NETNS_COOKIE), as the BPF programs see it. */
  readonly netnsCookie: bigint;
  readonly listeners: PodListeners;
  /**
   * A new, unconnected TCP socket created inside the pod netns with SO_MARK = AGENT_MARK, as an fd the
   * caller owns. Served from a small pre-created pool so the common case does not wait on the native thread.
   */
  newSocket(family: 4 | 6): Promise<number>;
  /**
   * The original destination BPF recorded for a redirected connection accepted on 15001.
   * `peer` is the accepted socket's remote address (the client's local address), `local` its local address.
   * Consumes the entry. Returns null when nothing was recorded.
   */
  originalDst(peer: SocketAddress, local: SocketAddress): SocketAddress | null;
  /**
   * A socket inside the pod netns bound to a client's address `from` (IP_TRANSPARENT, SO_MARK =
   * AGENT_MARK_TRANSPARENT; the pod's policy routing sends the application's replies back to it) and registered
   * as the agent's own flow to `to`, so sk_lookup lets its SYN reach the application. Null when the pod netns
   * could not be set up for that family: connect from the pod's own address then. Rejects when the kernel
   * refuses the address.
   */
  transparentSocket?(family: 4 | 6, from: string, to: SocketAddress): Promise<TransparentSocket> | null;
  /**
   * Copies of the pod's netns and listener fds for a data-plane worker thread, which owns and closes them.
   * Absent when the datapath cannot be shared across threads (test fakes).
   */
  shareWithWorker?(opts: { hbone: boolean }): PodWorkerShare;
}

/** What a data-plane worker thread needs to serve one pod from its own event loop. */
export interface PodWorkerShare {
  uid: string;
  netnsFd: number;
  netnsCookie: bigint;
  /** Whether the netns has IPv6 (upstream sockets of that family are pre-created too). */
  ipv6: boolean;
  /** Families for which the pod netns routes replies to transparent sockets back to the agent. */
  transparent: { 4: boolean; 6: boolean };
  /** Listener fds by port (v4 first): 15001, 15006, and 15008 unless the share was made without it. */
  listeners: { outbound: number[]; inbound: number[]; hbone: number[] };
}

/** A transparent upstream socket (see PodDatapath.transparentSocket). */
export interface TransparentSocket {
  fd: number;
  /** Call once connect() has finished, however it ended: the flow is no longer registered with sk_lookup. */
  connected(): void;
}

/** What a data-plane worker thread needs from the datapath as a whole. */
export interface DatapathWorkerShare {
  /** The pinned map of original destinations of connections redirected to 15001. */
  tupleDstPin: string;
  /** The pinned map of the agent's own transparent flows (nm_own_flows). */
  ownFlowsPin: string;
}

export interface AttachedProgram {
  name: string;
  attachType: string;
  /** cgroup path or netns path */
  target: string;
  programId: number;
  linkId: number;
  /** True when an existing pinned link was reused (program updated in place). */
  adopted: boolean;
}

export interface MapInfo {
  name: string;
  type: string;
  entries: number;
  maxEntries: number;
}

export interface PodCounters {
  /** connects redirected to 15001 */
  redirected: bigint;
  /** connects left alone because the listener was missing */
  failOpen: bigint;
  /** connects refused because the pod is fail-closed and the listener was missing */
  failClosedDenied: bigint;
}

export interface DatapathStatus {
  pinRoot: string;
  cgroupRoot: string;
  programs: AttachedProgram[];
  maps: MapInfo[];
  /** Global per-event counters from the BPF stats map, by event name. */
  stats: Record<string, bigint>;
}

export interface Datapath {
  /**
   * Enrolls a pod: opens its netns (clear error if missing), creates its listeners, attaches (or adopts) its
   * sk_lookup link, registers inbound steering, then writes the pod's "on" entry last.
   * On failure nothing is left behind.
   */
  enroll(spec: PodNetSpec): Promise<PodDatapath>;
  /** Deletes the pod's "on" entry first, then its steering and sk_lookup link. Does not close listener fds. */
  unenroll(uid: string): Promise<void>;
  /** Removes pinned per-pod state (map entries, links) for pods not in `keepUids`: restart reconcile. */
  pruneExcept(keepUids: Set<string>, keepNetnsCookies: Set<bigint>): Promise<number>;
  podCounters(netnsCookie: bigint): PodCounters | null;
  status(): DatapathStatus;
  /** Absent or null: data-plane worker threads are not possible with this datapath. */
  workerShare?(): DatapathWorkerShare | null;
  /**
   * Handover: a successor agent owns the pod's kernel state now; only this agent's handles on it (netns fd,
   * socket pool) are released, nothing in the kernel changes.
   */
  forget?(uid: string): void;
  /**
   * A successor that went away before taking over pointed nm_config and the pods' steering at itself: point them
   * back at this agent's listeners.
   */
  reassert?(): void;
  /**
   * SIGTERM without a successor: connects from every pod behave as if the agent's listener were gone (fail open,
   * or closed for fail-closed pods), and inbound plaintext is no longer steered here, while the listeners are
   * still open: connections already on their way are accepted, none is queued after the flip.
   */
  markDraining?(): void;
  /**
   * Restart without a predecessor: flows an earlier agent registered for its transparent connects (it died
   * mid-connect) are dropped. Never while another agent runs: its connects in progress need theirs.
   */
  clearOwnFlows?(): number;
  /** Drops the nm_own_flows entries of the agent with process id `pid` (it died, or went away mid-handover). */
  dropOwnFlowsOf?(pid: number): number;
  /**
   * detach=true (SIGTERM): detach every program, unpin links and maps, remove the pin root.
   * detach=false: release handles only; pinned state stays for the next agent to adopt.
   */
  close(opts: { detach: boolean }): Promise<void>;
}
