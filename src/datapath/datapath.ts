// The real Datapath: load the BPF object, attach/adopt cgroup programs, enroll pods, report status.

import fs from 'node:fs';
import path from 'node:path';
import { cgroup2Mounts, cgroupId, processCgroup2Path } from '../util/cgroup2';
import { teardownSteps } from '../util/teardown';
import * as abi from './abi';
import { DatapathError, nativeHint } from './errors';
import { defaultObjectPath, loadNative } from './native';
import type { NativeBinding, NativeBpfMap, NativeBpfObject, NativeNetnsThread } from './native';
import { enrollPod, ownFlowTag, PodHandle, skLookupPin } from './pod-datapath';
import type { DatapathLogger, PodContext } from './pod-datapath';
import { ensureBpffs, mkdirsOn } from '../util/host-fs';
import { probeBtf, probeCgroup2, probeObject, probePrivilege } from './probe';
import type { AttachedProgram, Datapath, DatapathOptions, DatapathStatus, DatapathWorkerShare, MapInfo, PodCounters, PodDatapath, PodNetSpec } from './types';

export type { DatapathLogger } from './pod-datapath';
export { DatapathError } from './errors';

/** The cgroup hooks, their programs and link pin names (under <pinRoot>/links/). */
const CGROUP_HOOKS = [
  { program: 'nm_sock4_connect', attachType: 'cgroup_inet4_connect', pin: 'cgroup-connect4' },
  { program: 'nm_sock6_connect', attachType: 'cgroup_inet6_connect', pin: 'cgroup-connect6' },
  { program: 'nm_sockops', attachType: 'cgroup_sock_ops', pin: 'cgroup-sockops' },
] as const;

/**
 * Opens the datapath. Preflight first, so a host that cannot run it gets ONE error naming what is
 * missing; then load (maps reused from pins), config, and attach-or-adopt of the cgroup programs.
 */
export async function openDatapath(opts: DatapathOptions, log: DatapathLogger): Promise<Datapath> {
  const native = loadNative();
  probeBtf();
  probePrivilege();
  probeCgroup2(opts.cgroupRoot);
  const objectPath = opts.objectPath ?? defaultObjectPath();
  probeObject(objectPath);
  const pinRoot = path.resolve(opts.pinRoot);
  let mounted: string | null;
  try {
    mounted = ensureBpffs(pinRoot, (target) => native.mountBpffs(target), log);
    mkdirsOn(path.join(pinRoot, 'links'), 'bpf', 0o700);
  } catch (err) {
    throw new DatapathError('NM_DATAPATH_BPFFS', (err as Error).message, { cause: err });
  }

  let obj: NativeBpfObject;
  try {
    obj = new native.BpfObject(objectPath, pinRoot);
  } catch (err) {
    const libbpfLog = (err as { libbpfLog?: string }).libbpfLog;
    throw new DatapathError('NM_DATAPATH_LOAD', `cannot load ${objectPath}: ${(err as Error).message}${libbpfLog ? `\n${libbpfLog}` : ''}`, {
      hint: nativeHint(err) ?? 'if the pinned maps come from an older build, remove the pin root or bump its version',
      cause: err,
    });
  }
  const dp = new KernelDatapath(native, obj, pinRoot, opts.cgroupRoot, log);
  try {
    dp.writeConfig();
    dp.attachCgroupHooks();
  } catch (err) {
    await dp.close({ detach: false });
    throw err;
  }
  log.info({ pinRoot, cgroupRoot: opts.cgroupRoot, object: objectPath, libbpf: native.libbpfVersion(), mountedBpffs: mounted }, 'datapath open');
  return dp;
}

class KernelDatapath implements Datapath, PodContext {
  readonly thread: NativeNetnsThread;
  readonly pods: NativeBpfMap;
  readonly steer: NativeBpfMap;
  readonly tupleDst: NativeBpfMap;
  readonly ownFlows: NativeBpfMap;
  private readonly config: NativeBpfMap;
  private readonly stats: NativeBpfMap;
  private readonly allMaps: NativeBpfMap[];
  readonly hotKey = Buffer.alloc(abi.NM_TUPLE_KEY.size);
  readonly hotOut = Buffer.alloc(abi.NM_ADDR.size);
  private readonly enrolled = new Map<string, PodHandle>();
  private readonly pending = new Set<string>();
  private readonly hooks: AttachedProgram[] = [];
  private closed = false;
  readonly reuseportProgFd: number;

  constructor(
    readonly native: NativeBinding,
    readonly obj: NativeBpfObject,
    readonly pinRoot: string,
    private readonly cgroupRoot: string,
    readonly log: DatapathLogger,
  ) {
    this.pods = obj.map(abi.MAPS.pods);
    this.steer = obj.map(abi.MAPS.steer);
    this.tupleDst = obj.map(abi.MAPS.tupleDst);
    this.config = obj.map(abi.MAPS.config);
    this.stats = obj.map(abi.MAPS.stats);
    this.ownFlows = obj.map(abi.MAPS.ownFlows);
    this.allMaps = [this.pods, obj.map(abi.MAPS.sockDst), this.tupleDst, this.steer, this.config, this.stats, this.ownFlows];
    this.thread = new native.NetnsThread();
    this.reuseportProgFd = obj.programFd('nm_reuseport_migrate');
  }

  isClosed(): boolean {
    return this.closed;
  }

  workerShare(): DatapathWorkerShare | null {
    return this.closed ? null : { tupleDstPin: path.join(this.pinRoot, abi.MAPS.tupleDst), ownFlowsPin: path.join(this.pinRoot, abi.MAPS.ownFlows) };
  }

  netnsOwner(netnsCookie: bigint): string | undefined {
    for (const p of this.enrolled.values()) if (p.netnsCookie === netnsCookie) return p.uid;
    return undefined;
  }

  /** nm_config: the agent's cgroup (its connects are never redirected) and the mark on its sockets. */
  writeConfig(): void {
    let id = 0n;
    const rel = processCgroup2Path('self');
    const root = cgroup2Mounts()[0];
    // The v2 root cgroup holds every process nobody placed elsewhere: excluding it would exclude them too.
    if (rel && rel !== '/' && root) {
      try {
        id = cgroupId(path.join(root, rel));
      } catch (err) {
        this.log.warn({ err, cgroup: rel }, 'cannot stat the agent cgroup: excluding agent sockets by SO_MARK only');
      }
    }
    this.config.update(Buffer.alloc(4), abi.encodeConfig(id, abi.NM_AGENT_MARK));
    this.log.debug({ agentCgroupId: id.toString(), agentCgroup: rel, mark: abi.NM_AGENT_MARK }, 'datapath config written');
  }

  attachCgroupHooks(): void {
    for (const h of CGROUP_HOOKS) {
      let r;
      try {
        r = this.obj.attachCgroup(h.program, this.cgroupRoot, path.join(this.pinRoot, 'links', h.pin));
      } catch (err) {
        throw new DatapathError('NM_DATAPATH_ATTACH', `cannot attach ${h.program} to ${this.cgroupRoot}: ${(err as Error).message}`, {
          hint: nativeHint(err),
          cause: err,
        });
      }
      this.hooks.push({ name: h.program, attachType: h.attachType, target: this.cgroupRoot, ...r });
      this.log.info({ program: h.program, cgroup: this.cgroupRoot, linkId: r.linkId, programId: r.programId }, r.adopted ? 'adopted pinned link' : 'attached');
    }
  }

  private live(): void {
    if (this.closed) throw new DatapathError('NM_DATAPATH_CLOSED', 'the datapath is closed');
  }

  async enroll(spec: PodNetSpec): Promise<PodDatapath> {
    this.live();
    const uid = spec?.uid;
    if (typeof uid === 'string' && (this.enrolled.has(uid) || this.pending.has(uid))) {
      throw new DatapathError('NM_DATAPATH_POD_EXISTS', `pod ${uid} is already enrolled in the datapath`, { hint: 'unenroll it first' });
    }
    if (typeof uid === 'string') this.pending.add(uid);
    try {
      const pod = await enrollPod(this, spec);
      if (this.closed) {
        // closed while we were creating listeners: undo, the caller gets an error
        pod.teardown();
        this.live();
      }
      this.enrolled.set(pod.uid, pod);
      return pod;
    } finally {
      if (typeof uid === 'string') this.pending.delete(uid);
    }
  }

  async unenroll(uid: string): Promise<void> {
    this.live();
    const pod = this.enrolled.get(uid);
    if (!pod) {
      // not ours in memory (e.g. enroll rolled back, or a previous run): still make sure no link lingers
      this.native.linkDetach(skLookupPin(this.pinRoot, uid));
      return;
    }
    this.enrolled.delete(uid);
    pod.teardown();
    this.log.info({ uid, netnsCookie: pod.netnsCookie.toString() }, 'pod unenrolled from datapath');
  }

  forget(uid: string): void {
    const pod = this.enrolled.get(uid);
    if (!pod) return;
    this.enrolled.delete(uid);
    pod.release();
    this.log.info({ uid }, 'pod left to the successor agent: handles released, kernel state untouched');
  }

  reassert(): void {
    this.live();
    this.writeConfig();
    for (const pod of this.enrolled.values()) pod.reassertSteering();
  }

  clearOwnFlows(): number {
    this.live();
    let n = 0;
    for (const key of this.ownFlows.keys()) if (this.ownFlows.delete(key)) n++;
    return n;
  }

  dropOwnFlowsOf(pid: number): number {
    this.live();
    const tag = ownFlowTag(pid);
    // same tag as ours (pids 255 apart): those could be this agent's connects in progress; the LRU ages them out
    if (tag === ownFlowTag()) return 0;
    const v = Buffer.alloc(1);
    let n = 0;
    for (const key of this.ownFlows.keys()) if (this.ownFlows.lookup(key, v) && v[0] === tag && this.ownFlows.delete(key)) n++;
    return n;
  }

  markDraining(): void {
    this.live();
    const { attempt, errors } = teardownSteps();
    for (const pod of this.enrolled.values()) attempt(() => pod.markDraining());
    if (errors.length) this.log.warn({ err: errors[0], failed: errors.length }, 'could not mark every pod draining; its connects find the listener closed soon anyway');
  }

  async pruneExcept(keepUids: Set<string>, keepNetnsCookies: Set<bigint>): Promise<number> {
    this.live();
    let removed = 0;
    for (const [uid, pod] of [...this.enrolled]) {
      if (keepUids.has(uid)) continue;
      await this.unenroll(uid);
      removed++;
      this.log.info({ uid, netnsCookie: pod.netnsCookie.toString() }, 'pruned enrolled pod not in keep set');
    }
    for (const key of this.pods.keys()) {
      const cookie = key.readBigUInt64LE(0);
      if (keepNetnsCookies.has(cookie)) continue;
      if (this.pods.delete(key)) {
        removed++;
        this.log.info({ netnsCookie: cookie.toString() }, 'pruned stale nm_pods entry');
      }
    }
    const keepPins = new Set([...keepUids].map((u) => path.basename(skLookupPin(this.pinRoot, u))));
    const linksDir = path.join(this.pinRoot, 'links');
    for (const name of fs.readdirSync(linksDir)) {
      if (!name.startsWith('sk_lookup-') || keepPins.has(name)) continue;
      if (this.native.linkDetach(path.join(linksDir, name))) {
        removed++;
        this.log.info({ link: name }, 'pruned stale sk_lookup link');
      }
    }
    // Steering entries of a dead agent vanished with its listeners; any left for IPs no enrolled pod owns go.
    const owned = new Set<string>();
    for (const p of this.enrolled.values()) for (const ip of p.ips) owned.add(ip);
    for (const key of this.steer.keys()) {
      const k = abi.decodeSteerKey(key);
      if (owned.has(k.ip)) continue;
      if (this.steer.delete(key)) {
        removed++;
        this.log.info({ ip: k.ip }, 'pruned stale steering entry');
      }
    }
    return removed;
  }

  podCounters(netnsCookie: bigint): PodCounters | null {
    this.live();
    const out = Buffer.alloc(abi.NM_POD.size);
    if (!this.pods.lookup(abi.u64Key(netnsCookie), out)) return null;
    const v = abi.decodePod(out);
    return { redirected: v.redirected, failOpen: v.failOpen, failClosedDenied: v.failClosedDenied };
  }

  status(): DatapathStatus {
    this.live();
    const programs: AttachedProgram[] = [...this.hooks, ...[...this.enrolled.values()].map((p) => p.link)];
    const maps: MapInfo[] = this.allMaps.map((m) => ({ name: m.name, type: m.type, entries: m.count(), maxEntries: m.maxEntries }));
    const stats: Record<string, bigint> = {};
    const key = Buffer.alloc(4);
    const val = Buffer.alloc(this.stats.valueBufferSize);
    for (const s of abi.NM_STATS) {
      key.writeUInt32LE(s.code);
      stats[s.name] = this.stats.lookup(key, val) ? abi.sumPerCpu(val, this.stats.possibleCpus) : 0n;
    }
    return { pinRoot: this.pinRoot, cgroupRoot: this.cgroupRoot, programs, maps, stats };
  }

  async close(opts: { detach: boolean }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { attempt, errors } = teardownSteps();
    for (const pod of this.enrolled.values()) attempt(() => (opts.detach ? pod.teardown() : pod.release()));
    this.enrolled.clear();
    attempt(() => this.thread.close());
    attempt(() => this.native.closeFd(this.reuseportProgFd));
    if (opts.detach) {
      // every link under links/, including sk_lookup links of pods from earlier runs
      const linksDir = path.join(this.pinRoot, 'links');
      for (const name of fs.existsSync(linksDir) ? fs.readdirSync(linksDir) : []) {
        attempt(() => this.native.linkDetach(path.join(linksDir, name)));
      }
    }
    for (const m of this.allMaps) attempt(() => m.close());
    attempt(() => this.obj.close());
    if (opts.detach) attempt(() => fs.rmSync(this.pinRoot, { recursive: true, force: true }));
    this.log.info({ detach: opts.detach, pinRoot: this.pinRoot }, opts.detach ? 'datapath detached and unpinned' : 'datapath handles released; pinned state kept for the next agent');
    if (errors.length) {
      throw new DatapathError('NM_DATAPATH_ATTACH', `datapath close left state behind: ${(errors[0] as Error).message}`, { cause: errors[0] });
    }
  }
}
