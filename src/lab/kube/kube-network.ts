// The lab's network in Kubernetes mode. Fabric and node uplinks are as in the file mode; what differs is who wires
// pods: a node has no pod bridge of its own, the reference `bridge` plugin makes one (cni0, the node's gateway) on
// the first ADD, `host-local` hands out the node's pod range, `loopback` brings up each pod's lo. The fabric bridge
// address, 198.18.0.254, is where the API server (through the proxy) and the control plane's TLS port listen.

import fs from 'node:fs';
import path from 'node:path';
import type { AddressPlan, NodePlan } from '../address-plan';
import { IF } from '../paths';
import { ipBatch } from '../run';
import { addNetns, netnsSysctl } from '../topology';
import type { Conflist } from './cni-runtime';
import { NETWORK_NAME } from './kube-state';

/** A node: uplink into the fabric and routes to the other nodes' pod ranges; pods are the CNI plugins' business. */
export async function createKubeNode(plan: AddressPlan, node: NodePlan): Promise<void> {
  await addNetns(node.netns);
  await ipBatch(node.netns, [`link add ${IF.nodeUplink} type veth peer name ${node.fabricIf} netns ${plan.fabricNetns}`, `addr add ${node.fabricIP}/24 dev ${IF.nodeUplink}`, `link set ${IF.nodeUplink} up`]);
  await ipBatch(plan.fabricNetns, [`link set ${node.fabricIf} master ${IF.bridge}`, `link set ${node.fabricIf} up`]);
  await netnsSysctl(node.netns, 'net.ipv4.ip_forward', '1');
  await ipBatch(
    node.netns,
    node.routes.filter((r) => r.via).map((r) => `route add ${r.dst} via ${r.via} dev ${r.dev}`),
  );
}

/** The node's network as its container runtime would find it in /etc/cni/net.d: loopback, then bridge + host-local. */
export function nodeConflist(node: Pick<NodePlan, 'cidr' | 'gateway'>, ipamDir: string): Conflist {
  return {
    cniVersion: '1.0.0',
    name: NETWORK_NAME,
    plugins: [
      { type: 'loopback' },
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        isDefaultGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: node.cidr, gateway: node.gateway }]], dataDir: ipamDir },
      },
    ],
  };
}

export function writeNodeConflist(confDir: string, list: Conflist): string {
  fs.mkdirSync(confDir, { recursive: true });
  const file = path.join(confDir, '10-nodemesh-lab.conflist');
  fs.writeFileSync(file, `${JSON.stringify(list, null, 2)}\n`);
  return file;
}
