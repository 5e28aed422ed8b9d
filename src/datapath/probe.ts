// Preflight for openDatapath: find the ONE thing that is missing (BTF, privilege, cgroup v2, bpffs) and say so.

import fs from 'node:fs';
import path from 'node:path';
import { DatapathError } from './errors';
import type { NativeBinding } from './native';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const BPF_FS_MAGIC = 0xcafe4a11;
const DEFAULT_BPFFS = '/sys/fs/bpf';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

export interface ProbeLogger {
  info(obj: object, msg: string): void;
}

export function probeBtf(btfPath = '/sys/kernel/btf/vmlinux'): void {
  if (!fs.existsSync(btfPath)) {
    throw new DatapathError('NM_DATAPATH_NO_BTF', `kernel BTF is missing (${btfPath} does not exist)`, {
      hint: 'the datapath needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.10+ distro kernels have it)',
    });
  }
}

/** Effective capability set of this process, from /proc/self/status. */
export function effectiveCaps(statusText = fs.readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/**
 * Loading and attaching needs CAP_BPF+CAP_NET_ADMIN (or CAP_SYS_ADMIN); setns() into pod netns and
 * mounting bpffs need CAP_SYS_ADMIN. Check up front so the operator gets one message, not an EPERM later.
 */
export function probePrivilege(caps = effectiveCaps()): void {
  const has = (c: number): boolean => (caps & (1n << BigInt(c))) !== 0n;
  const missing: string[] = [];
  if (!has(CAP_SYS_ADMIN)) missing.push('CAP_SYS_ADMIN (setns into pod netns, bpffs mount)');
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN (cgroup/sk_lookup attach, SO_MARK)');
  if (!has(CAP_BPF) && !has(CAP_SYS_ADMIN)) missing.push('CAP_BPF');
  if (missing.length) {
    throw new DatapathError('NM_DATAPATH_NO_PRIVILEGE', `the agent lacks ${missing.join(', ')}`, {
      hint: 'run it as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (DaemonSet securityContext)',
    });
  }
}

function statfsType(p: string): number | null {
  try {
    return fs.statfsSync(p).type;
  } catch {
    return null;
  }
}

export function probeCgroup2(cgroupRoot: string): void {
  const t = statfsType(cgroupRoot);
  if (t === null) {
    throw new DatapathError('NM_DATAPATH_NO_CGROUP2', `cgroupRoot ${cgroupRoot} does not exist`, {
      hint: 'pass a directory on a cgroup v2 mount (e.g. /sys/fs/cgroup/unified on hybrid hosts)',
    });
  }
  if (t !== CGROUP2_SUPER_MAGIC) {
    throw new DatapathError('NM_DATAPATH_NO_CGROUP2', `cgroupRoot ${cgroupRoot} is not on a cgroup v2 mount`, {
      hint: 'cgroup-bpf only works on cgroup v2; mount it with "mount -t cgroup2 none /sys/fs/cgroup/unified" and use a directory there',
    });
  }
}

/** Nearest existing ancestor of `p` (p itself if it exists). */
function existingAncestor(p: string): string {
  let cur = path.resolve(p);
  while (!fs.existsSync(cur)) cur = path.dirname(cur);
  return cur;
}

/**
 * The pin root must live on a bpf filesystem. When /sys/fs/bpf is not mounted (some VMs and minimal
 * hosts), mount it — pins elsewhere would vanish or fail — and say so. Returns the mount point if we mounted.
 */
export function ensureBpffs(pinRoot: string, native: NativeBinding, log: ProbeLogger): string | null {
  const abs = path.resolve(pinRoot);
  if (statfsType(existingAncestor(abs)) === BPF_FS_MAGIC) return null;
  const underDefault = abs === DEFAULT_BPFFS || abs.startsWith(`${DEFAULT_BPFFS}/`);
  if (!underDefault) {
    throw new DatapathError('NM_DATAPATH_BPFFS', `pinRoot ${pinRoot} is not on a bpf filesystem`, {
      hint: `use a directory under ${DEFAULT_BPFFS}, or mount bpffs there first ("mount -t bpf bpf DIR")`,
    });
  }
  try {
    fs.mkdirSync(DEFAULT_BPFFS, { recursive: true });
    native.mountBpffs(DEFAULT_BPFFS);
  } catch (err) {
    throw new DatapathError('NM_DATAPATH_BPFFS', `bpffs is not mounted at ${DEFAULT_BPFFS} and mounting it failed: ${(err as Error).message}`, {
      hint: 'mount it on the host ("mount -t bpf bpf /sys/fs/bpf") and pass /sys/fs/bpf into the agent container',
      cause: err,
    });
  }
  log.info({ where: DEFAULT_BPFFS }, 'bpffs was not mounted: mounted it');
  return DEFAULT_BPFFS;
}

export function probeObject(objectPath: string): void {
  if (!fs.existsSync(objectPath)) {
    throw new DatapathError('NM_DATAPATH_NO_OBJECT', `BPF object ${objectPath} does not exist`, {
      hint: 'build it with "npm run build:bpf" (clang, libbpf-dev, bpftool)',
    });
  }
}
