// Address plan: which node gets which fabric address and pod CIDR, which pod gets which IP and names.
//
// Everything comes from 198.18.0.0/15 (RFC 2544 benchmarking range) and exists only inside lab
// namespaces. Fabric: 198.18.0.<i>/24 for node i (1-based). Node i's pods: 198.19.<i>.0/24, gateway
// .1, pods from .2. A manifest may pin status.podIP anywhere in 198.18.1.0-198.18.255.255 too; such
// /32s are routed explicitly.

import { isIPv4 } from 'node:net';
import { LabManifestError, type ManifestIssue } from './errors';
import { wantedUnlessNamespaceSays } from '../enroll/membership';
import type { PodSpec } from './manifest';
import { fabricNetns, IF, nodeNetns, podKey, podKeyDisambiguated, podNetns } from './paths';

export const FABRIC_CIDR = '198.18.0.0/24';
/** The fabric's own address (on its bridge): what runs in the fabric netns (the lab's Prometheus) reaches nodes from it. */
export const FABRIC_HOST_IP = '198.18.0.254';
/** .254 is the fabric's own address (FABRIC_HOST_IP). */
export const MAX_NODES = 253;
export const MAX_PODS_PER_NODE = 253;

export interface RoutePlan {
  /** Destination prefix, e.g. 198.19.2.0/24 or 198.18.7.9/32. */
  dst: string;
  /** Next hop on the fabric; absent for a local /32 that sits on the node bridge. */
  via?: string;
  dev: string;
}

export interface PodPlan {
  spec: PodSpec;
  /** `<ns>-<pod>`, disambiguated: names the pod's netns and cgroup dir. */
  key: string;
  netns: string;
  ip: string;
  /** The node-side veth name inside the node netns (`p<k>`). */
  hostIf: string;
  node: string;
  enroll: boolean;
}

export interface NodePlan {
  name: string;
  index: number;
  netns: string;
  fabricIP: string;
  /** The node's port name inside the fabric netns (`n<i>`). */
  fabricIf: string;
  cidr: string;
  gateway: string;
  routes: RoutePlan[];
  pods: PodPlan[];
}

export interface AddressPlan {
  lab: string;
  fabricNetns: string;
  nodes: NodePlan[];
  pods: PodPlan[];
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
export function inCidr(ip: string, cidr: string): boolean {
  const [base, lenStr] = cidr.split('/') as [string, string];
  const len = Number(lenStr);
  const size = 2 ** (32 - len);
  const start = Math.floor(ipToInt(base) / size) * size;
  const v = ipToInt(ip);
  return v >= start && v < start + size;
}

export function nodeCidr(index: number): string {
  return `198.19.${index}.0/24`;
}

/**
 * Decides nodes, IPs, names, routes and which pods are enrolled (`namespaceLabels`: of the manifest's Namespace
 * objects, see namespaceLabels). Throws LabManifestError (with the podIP's line) on conflicts.
 */
export function planAddresses(lab: string, pods: PodSpec[], namespaceLabels: ReadonlyMap<string, Record<string, string>> = new Map()): AddressPlan {
  const issues: ManifestIssue[] = [];
  const nodeNames: string[] = [];
  for (const p of pods) if (!nodeNames.includes(p.nodeName)) nodeNames.push(p.nodeName);
  if (nodeNames.length > MAX_NODES) {
    const p = pods.find((x) => x.nodeName === nodeNames[MAX_NODES]) as PodSpec;
    issues.push({ ...p.loc, field: 'spec.nodeName', message: `the lab supports at most ${MAX_NODES} nodes` });
  }
  const nodes: NodePlan[] = nodeNames.slice(0, MAX_NODES).map((name, i) => {
    const index = i + 1;
    return {
      name,
      index,
      netns: nodeNetns(lab, name),
      fabricIP: `198.18.0.${index}`,
      fabricIf: IF.fabricPort(index),
      cidr: nodeCidr(index),
      gateway: `198.19.${index}.1`,
      routes: [],
      pods: [],
    };
  });
  const nodeNetnsSeen = new Map<string, string>();
  for (const n of nodes) {
    if (n.netns === fabricNetns(lab)) {
      const p = pods.find((x) => x.nodeName === n.name) as PodSpec;
      issues.push({ ...p.loc, field: 'spec.nodeName', message: `node name "${n.name}" is reserved for the lab's fabric; rename the node` });
    }
    const prev = nodeNetnsSeen.get(n.netns);
    if (prev !== undefined) {
      const p = pods.find((x) => x.nodeName === n.name) as PodSpec;
      issues.push({ ...p.loc, field: 'spec.nodeName', message: `node names "${prev}" and "${n.name}" map to the same netns ${n.netns}; rename one` });
    }
    nodeNetnsSeen.set(n.netns, n.name);
  }
  const byName = new Map(nodes.map((n) => [n.name, n]));

  // Pinned IPs first, so automatic assignment can skip them.
  const used = new Set<string>();
  for (const p of pods) {
    const node = byName.get(p.nodeName);
    if (!p.podIP || !node) continue;
    const loc = p.podIPLoc ?? p.loc;
    const fail = (message: string): void => {
      issues.push({ ...loc, field: 'status.podIP', message });
    };
    if (!isIPv4(p.podIP) || !inCidr(p.podIP, '198.18.0.0/15')) {
      fail(`${p.podIP} is outside the lab range 198.18.0.0/15; leave podIP out or pick one inside it`);
    } else if (inCidr(p.podIP, FABRIC_CIDR)) {
      fail(`${p.podIP} is in ${FABRIC_CIDR}, which the lab uses for node addresses`);
    } else if (inCidr(p.podIP, '198.19.0.0/16') && !inCidr(p.podIP, node.cidr)) {
      fail(`${p.podIP} is in 198.19.0.0/16 but not in node ${node.name}'s pod CIDR ${node.cidr}`);
    } else if (inCidr(p.podIP, node.cidr) && (p.podIP === node.gateway || /\.(0|255)$/.test(p.podIP))) {
      fail(`${p.podIP} is the gateway, network or broadcast address of ${node.cidr}; use .2-.254`);
    } else {
      used.add(p.podIP);
    }
  }

  const keyCount = new Map<string, number>();
  for (const p of pods) keyCount.set(podKey(p.namespace, p.name), (keyCount.get(podKey(p.namespace, p.name)) ?? 0) + 1);
  const next = new Map<string, number>();
  const planned: PodPlan[] = [];
  for (const p of pods) {
    const node = byName.get(p.nodeName);
    if (!node) continue;
    let ip = p.podIP && used.has(p.podIP) ? p.podIP : undefined;
    if (!ip) {
      let host = next.get(node.name) ?? 2;
      while (host <= 254 && used.has(`198.19.${node.index}.${host}`)) host++;
      if (host > 254) {
        issues.push({ ...p.loc, field: 'spec.nodeName', message: `node ${node.name} has no free pod address left in ${node.cidr}` });
        continue;
      }
      ip = `198.19.${node.index}.${host}`;
      used.add(ip);
      next.set(node.name, host + 1);
    }
    const base = podKey(p.namespace, p.name);
    // Pod netns names share the lab prefix with node netns ("node default-x" vs "pod default/x").
    const clash = (keyCount.get(base) ?? 0) > 1 || nodeNetnsSeen.has(podNetns(lab, base)) || podNetns(lab, base) === fabricNetns(lab);
    const key = clash ? podKeyDisambiguated(p.namespace, p.name) : base;
    const enroll = wantedUnlessNamespaceSays({ namespace: p.namespace, annotations: p.annotations, hostNetwork: false }, namespaceLabels.get(p.namespace));
    const plan: PodPlan = { spec: p, key, netns: podNetns(lab, key), ip, hostIf: IF.nodePodPort(node.pods.length), node: node.name, enroll };
    node.pods.push(plan);
    planned.push(plan);
  }
  for (const n of nodes) {
    if (n.pods.length > MAX_PODS_PER_NODE) {
      const p = n.pods[MAX_PODS_PER_NODE] as PodPlan;
      issues.push({ ...p.spec.loc, field: 'spec.nodeName', message: `node ${n.name} has more than ${MAX_PODS_PER_NODE} pods` });
    }
  }

  // Routes: other nodes' CIDRs and off-CIDR /32s via their fabric address; own off-CIDR /32s on the bridge.
  for (const n of nodes) {
    for (const m of nodes) {
      if (m === n) {
        for (const p of m.pods) if (!inCidr(p.ip, m.cidr)) n.routes.push({ dst: `${p.ip}/32`, dev: IF.bridge });
        continue;
      }
      n.routes.push({ dst: m.cidr, via: m.fabricIP, dev: IF.nodeUplink });
      for (const p of m.pods) if (!inCidr(p.ip, m.cidr)) n.routes.push({ dst: `${p.ip}/32`, via: m.fabricIP, dev: IF.nodeUplink });
    }
  }
  if (issues.length > 0) throw new LabManifestError(issues, 'NM_LAB_ADDRESS_PLAN');
  return { lab, fabricNetns: fabricNetns(lab), nodes, pods: planned };
}
