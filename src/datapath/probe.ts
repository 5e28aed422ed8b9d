// Preflight for openDatapath: find the ONE thing that is missing (BTF, privilege, cgroup v2, the BPF object) and say so.
// bpffs is util/host-fs.ts's business: the lab needs it too, before any agent starts.

import fs from 'node:fs';
import { FS_MAGIC, fsTypeOf } from '../util/host-fs';
import { DatapathError } from './errors';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

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


export function probeCgroup2(cgroupRoot: string): void {
  const t = fsTypeOf(cgroupRoot);
  if (t === null) {
    throw new DatapathError('NM_DATAPATH_NO_CGROUP2', `cgroupRoot ${cgroupRoot} does not exist`, {
      hint: 'pass a directory on a cgroup v2 mount (e.g. /sys/fs/cgroup/unified on hybrid hosts)',
    });
  }
  if (t !== FS_MAGIC.cgroup2) {
    throw new DatapathError('NM_DATAPATH_NO_CGROUP2', `cgroupRoot ${cgroupRoot} is not on a cgroup v2 mount`, {
      hint: 'cgroup-bpf only works on cgroup v2; mount it with "mount -t cgroup2 none /sys/fs/cgroup/unified" and use a directory there',
    });
  }
}

export function probeObject(objectPath: string): void {
  if (!fs.existsSync(objectPath)) {
    throw new DatapathError('NM_DATAPATH_NO_OBJECT', `BPF object ${objectPath} does not exist`, {
      hint: 'build it with "npm run build:bpf" (clang, libbpf-dev, bpftool)',
    });
  }
}
