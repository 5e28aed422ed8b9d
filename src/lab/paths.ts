// Naming conventions of a lab on the host: state dirs, netns names, cgroup dirs, bpf pin roots.
//
// `lab down` relies on these being pure functions of (lab, node, pod) so it can clean up
// even when state.json was never written (a crash midway through `lab up`).

import { createHash } from 'node:crypto';
import path from 'node:path';
import { LabError } from './errors';

export const LAB_RUN_ROOT = '/run/nodemesh/lab';
export const LAB_PIN_ROOT = '/sys/fs/bpf/nodemesh/lab';
export const NETNS_DIR = '/run/netns';
export const DEFAULT_LAB = 'lab';

const LAB_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** Lab names become parts of netns, cgroup and file names: keep them short and plain. */
export function checkLabName(lab: string): string {
  if (!LAB_NAME_RE.test(lab)) {
    throw new LabError('NM_LAB_BAD_NAME', `invalid lab name "${lab}"`, {
      hint: 'use 1-32 lowercase letters, digits and "-", starting and ending with a letter or digit',
    });
  }
  return lab;
}

/** Package root (holds dist/): this file is dist/src/lab/paths.js once compiled. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');
export const DEFAULT_CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

export function labDir(lab: string): string {
  return path.join(LAB_RUN_ROOT, lab);
}
export function statePath(lab: string): string {
  return path.join(labDir(lab), 'state.json');
}
/** The agent's --state-dir; holds enroll.sock and admin.sock (`nodemesh admin --node` looks here). */
export function nodeStateDir(lab: string, node: string): string {
  return path.join(labDir(lab), 'nodes', node);
}
export function enrollSocket(lab: string, node: string): string {
  return path.join(nodeStateDir(lab, node), 'enroll.sock');
}
export function adminSocket(lab: string, node: string): string {
  return path.join(nodeStateDir(lab, node), 'admin.sock');
}
export function logDir(lab: string): string {
  return path.join(labDir(lab), 'logs');
}
export function binDir(lab: string): string {
  return path.join(labDir(lab), 'bin');
}
export function labPinDir(lab: string): string {
  return path.join(LAB_PIN_ROOT, lab);
}
export function nodePinRoot(lab: string, node: string): string {
  return path.join(labPinDir(lab), node, 'v1');
}

/** `<cg2>/nodemesh-lab-<lab>`: one subtree per lab, so cgroup.kill there stops everything. */
export function labCgroup(cg2: string, lab: string): string {
  return path.join(cg2, `nodemesh-lab-${lab}`);
}
export function nodeCgroup(cg2: string, lab: string, node: string): string {
  return path.join(labCgroup(cg2, lab), node);
}
export function agentCgroup(cg2: string, lab: string, node: string): string {
  return path.join(nodeCgroup(cg2, lab, node), 'agent');
}
/** The agent's --cgroup-root: the parent of every pod cgroup on the node. */
export function podsCgroupRoot(cg2: string, lab: string, node: string): string {
  return path.join(nodeCgroup(cg2, lab, node), 'pods');
}

/** Keeps [a-z0-9-], folds the rest to "-", so Kubernetes names map onto file and netns names. */
export function sanitize(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/** Bounds a name: long names keep a readable prefix plus a hash so they stay unique. */
export function bounded(s: string, max: number): string {
  if (s.length <= max) return s;
  return `${s.slice(0, max - 9)}-${shortHash(s)}`;
}

export function netnsPrefix(lab: string): string {
  return `nm-${lab}-`;
}
export function fabricNetns(lab: string): string {
  return `${netnsPrefix(lab)}fabric`;
}
export function nodeNetns(lab: string, node: string): string {
  return bounded(`${netnsPrefix(lab)}${sanitize(node)}`, 100);
}
/** Base of a pod's netns and cgroup names; the address plan disambiguates collisions. */
export function podKey(namespace: string, name: string): string {
  return bounded(`${sanitize(namespace)}-${sanitize(name)}`, 80);
}
export function podKeyDisambiguated(namespace: string, name: string): string {
  return `${podKey(namespace, name).slice(0, 71)}-${shortHash(`${namespace}/${name}`)}`;
}
export function podNetns(lab: string, key: string): string {
  return bounded(`${netnsPrefix(lab)}${key}`, 100);
}
export function netnsPath(name: string): string {
  return path.join(NETNS_DIR, name);
}

/**
 * Interface names (IFNAMSIZ: 15 chars). Each netns has its own name space, so short fixed
 * names suffice: in the fabric `n<i>` per node, in a node `fab0` + `br0` + `p<k>` per pod,
 * in a pod `eth0`.
 */
export const IF = {
  bridge: 'br0',
  nodeUplink: 'fab0',
  podEth: 'eth0',
  fabricPort: (nodeIndex: number): string => `n${nodeIndex}`,
  nodePodPort: (podIndex: number): string => `p${podIndex}`,
} as const;
