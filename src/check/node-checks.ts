// `check --pre` on a node: kernel, BTF, cgroup v2, bpffs, capabilities, AppArmor, the CNI conflist.

import fs from 'node:fs';
import os from 'node:os';
import { primaryConflist } from '../cni/install';
import { fail, ok, warn, type CheckResult } from './report';

export interface NodeCheckOptions {
  procRoot?: string;
  sysRoot?: string;
  cniConfDir: string;
  /** Kernel release, for tests. */
  release?: string;
}

/** Capabilities the agent needs (bit numbers from linux/capability.h). */
const CAPS: [string, number][] = [
  ['CAP_NET_ADMIN', 12],
  ['CAP_SYS_PTRACE', 19],
  ['CAP_SYS_ADMIN', 21],
  ['CAP_PERFMON', 38],
  ['CAP_BPF', 39],
];

function mounts(procRoot: string): { target: string; type: string }[] {
  try {
    return fs
      .readFileSync(`${procRoot}/self/mounts`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const f = l.split(' ');
        return { target: f[1]!, type: f[2]! };
      });
  } catch {
    return [];
  }
}

export function nodeChecks(opts: NodeCheckOptions): CheckResult[] {
  const proc = opts.procRoot ?? '/proc';
  const sys = opts.sysRoot ?? '/sys';
  const out: CheckResult[] = [];
  const release = opts.release ?? os.release();
  const [maj, min] = release.split('.').map((x) => Number.parseInt(x, 10));
  out.push(
    maj! > 5 || (maj === 5 && min! >= 15)
      ? ok('kernel', `Linux ${release}`)
      : fail('kernel', `Linux ${release} is older than 5.15`, 'run nodes on a kernel of 5.15 or later (sk_lookup, bpf_sk_assign, BTF-defined maps)'),
  );
  out.push(
    fs.existsSync(`${sys}/kernel/btf/vmlinux`)
      ? ok('btf', `${sys}/kernel/btf/vmlinux present`)
      : fail('btf', `no ${sys}/kernel/btf/vmlinux`, 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel since 2021 is)'),
  );
  const m = mounts(proc);
  const cg2 = m.find((x) => x.type === 'cgroup2');
  out.push(
    cg2
      ? ok('cgroup v2', `mounted at ${cg2.target}`)
      : warn('cgroup v2', 'no cgroup2 mount', 'the agent mounts one at /sys/fs/cgroup/unified; on hosts without cgroup v2 support, boot with systemd.unified_cgroup_hierarchy=1'),
  );
  const bpf = m.find((x) => x.type === 'bpf');
  out.push(bpf ? ok('bpffs', `mounted at ${bpf.target}`) : warn('bpffs', 'not mounted', 'the DaemonSet\'s mount-bpffs init container mounts it at /sys/fs/bpf; outside Kubernetes the agent mounts it'));
  let capEff = 0n;
  try {
    const line = fs.readFileSync(`${proc}/self/status`, 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
    capEff = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
  } catch {
    // unreadable: every capability reads as missing
  }
  const missing = CAPS.filter(([, bit]) => (capEff & (1n << BigInt(bit))) === 0n).map(([n]) => n);
  out.push(
    missing.length === 0
      ? ok('capabilities', CAPS.map(([n]) => n).join(' '))
      : fail('capabilities', `missing ${missing.join(', ')}`, 'run the agent as the DaemonSet does (capabilities added per its securityContext), or as root on a kernel that knows CAP_BPF/CAP_PERFMON (5.8+)'),
  );
  let apparmor = 'N';
  try {
    apparmor = fs.readFileSync(`${sys}/module/apparmor/parameters/enabled`, 'utf8').trim();
  } catch {
    // not built in
  }
  if (apparmor !== 'Y') out.push(ok('apparmor', 'AppArmor is not enabled'));
  else {
    let profile = 'unconfined';
    try {
      profile = fs.readFileSync(`${proc}/self/attr/current`, 'utf8').replace(/\0/g, '').trim();
    } catch {
      // unknown
    }
    out.push(
      profile === 'unconfined'
        ? ok('apparmor', 'enabled; this process is unconfined (the DaemonSet asks for unconfined)')
        : fail('apparmor', `this process runs under the AppArmor profile "${profile}", which may deny mount and ptrace reads`, 'run the agent unconfined (the DaemonSet\'s container.apparmor.security.beta.kubernetes.io/agent: unconfined)'),
    );
  }
  try {
    out.push(ok('cni conflist', primaryConflist(opts.cniConfDir)));
  } catch (err) {
    out.push(fail('cni conflist', (err as Error).message.replace(/ \(.*\)$/, ''), (err as { hint?: string }).hint ?? 'install a network plugin first'));
  }
  return out;
}
