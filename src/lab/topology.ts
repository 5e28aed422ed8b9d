// Builds the lab's network: fabric bridge, node netns with uplink + pod bridge, pod netns with veth.
//
// Nothing here touches the root namespace: every veth is created inside a lab netns with its peer
// moved straight into another lab netns (`ip -n A link add x type veth peer name y netns B`).

import { FABRIC_HOST_IP, type AddressPlan, type NodePlan, type PodPlan, inCidr } from './address-plan';
import { IF, netnsPath } from './paths';
import { ipBatch, run } from './run';

export async function addNetns(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  await ipBatch(name, ['link set lo up']);
}

/** The fabric: one bridge every node's uplink plugs into (a flat L2 "datacenter network"). */
export async function createFabric(plan: AddressPlan): Promise<void> {
  await addNetns(plan.fabricNetns);
  // An address on the bridge, so processes in the fabric netns (the lab's Prometheus) reach the nodes' 15020.
  await ipBatch(plan.fabricNetns, [`link add ${IF.bridge} type bridge`, `addr add ${FABRIC_HOST_IP}/24 dev ${IF.bridge}`, `link set ${IF.bridge} up`]);
}

/** Writes a sysctl inside a netns: /proc/sys/net is resolved against the writer's netns. */
export async function netnsSysctl(netns: string, key: string, value: string): Promise<void> {
  const file = `/proc/sys/${key.replace(/\./g, '/')}`;
  await run(['nsenter', `--net=${netnsPath(netns)}`, '--', 'sh', '-c', `echo ${value} > ${file}`]);
}

/** A node: uplink into the fabric, a bridge holding its pods' gateway, routes to other nodes' pods. */
export async function createNode(plan: AddressPlan, node: NodePlan): Promise<void> {
  await addNetns(node.netns);
  await ipBatch(node.netns, [
    `link add ${IF.nodeUplink} type veth peer name ${node.fabricIf} netns ${plan.fabricNetns}`,
    `addr add ${node.fabricIP}/24 dev ${IF.nodeUplink}`,
    `link set ${IF.nodeUplink} up`,
    `link add ${IF.bridge} type bridge`,
    `addr add ${node.gateway}/24 dev ${IF.bridge}`,
    `link set ${IF.bridge} up`,
  ]);
  await ipBatch(plan.fabricNetns, [`link set ${node.fabricIf} master ${IF.bridge}`, `link set ${node.fabricIf} up`]);
  // Nodes route between pods and the fabric; pods and the fabric never forward.
  await netnsSysctl(node.netns, 'net.ipv4.ip_forward', '1');
  const viaFabric = node.routes.filter((r) => r.via);
  await ipBatch(node.netns, viaFabric.map((r) => `route add ${r.dst} via ${r.via} dev ${r.dev}`));
}

/**
 * A pod: its own netns with eth0 holding the pod IP as a /32 and an onlink default route via the
 * node gateway (the shape Calico and Cilium use), so pods never ARP for each other directly.
 */
export async function createPod(node: NodePlan, pod: PodPlan): Promise<void> {
  await addNetns(pod.netns);
  const nodeCmds = [
    `link add ${pod.hostIf} type veth peer name ${IF.podEth} netns ${pod.netns}`,
    `link set ${pod.hostIf} master ${IF.bridge}`,
    `link set ${pod.hostIf} up`,
  ];
  // A pinned podIP outside the node CIDR is not covered by the bridge's connected route.
  if (!inCidr(pod.ip, node.cidr)) nodeCmds.push(`route add ${pod.ip}/32 dev ${IF.bridge}`);
  await ipBatch(node.netns, nodeCmds);
  await ipBatch(pod.netns, [
    `addr add ${pod.ip}/32 dev ${IF.podEth}`,
    `link set ${IF.podEth} up`,
    `route add default via ${node.gateway} dev ${IF.podEth} onlink`,
  ]);
}

/** Names of all netns on the host (`ip netns list` prints "name (id: N)"). */
export async function listNetns(): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}
