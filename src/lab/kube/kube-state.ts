// What a lab in Kubernetes mode adds to state.json, and where its files live: the API server (the lab's own or
// given), the proxy that puts it on the lab's network, the API objects the lab created (so `lab down` can delete
// them from an API server that outlives the lab), and per pod the CNI sandbox a runtime would remember.

import path from 'node:path';
import type { LabState, NodeState, ProcRef } from '../state';
import type { ObjectRef } from './api-client';
import { FABRIC_HOST_IP } from '../address-plan';
import { labDir, nodeStateDir } from '../paths';

/** The API server's address on the lab's network: the fabric bridge's own, which every node reaches on its uplink. */
export const LAB_API_ADDRESS = FABRIC_HOST_IP;
export const LAB_API_PORT = 6443;
/** The control plane's TLS port (xDS, the CA) on the same address. */
export const LAB_CP_SECURE_PORT = 15012;
/** Who the lab's writes to the API belong to (server-side apply's field manager). */
export const FIELD_MANAGER = 'nodemesh-lab';
/** Every object the lab creates carries it (value: the lab's name). */
export const LAB_LABEL = 'nodemesh.io/lab';
/** The runtime-side name of a sandbox, as CNI_CONTAINERID. */
export const NETWORK_NAME = 'nodemesh-lab';

export interface PodSandbox {
  containerId: string;
  /** The conflist the pod was wired with (DEL and CHECK use the same). */
  conflist: string;
  /** The ADD result (prevResult of DEL and CHECK). */
  result?: Record<string, unknown>;
}

export interface KubeLabState {
  /** The API server as the host reaches it (`lab up`, tests, kubectl). */
  server: string;
  /** Admin credentials on the host: the lab's own kubeconfig, or the one given with --kubeconfig. */
  adminKubeconfig: string;
  /** The API server as the lab's namespaces reach it: https://198.18.0.254:6443, through the proxy. */
  labServer: string;
  /** PEM file of the CA that lab processes verify the API server with (absent: the given kubeconfig's own). */
  caFile?: string;
  /** The name the API server's certificate carries, when the lab dials it by another address. */
  tlsServerName?: string;
  /** etcd + kube-apiserver started by the lab (absent with --kubeconfig). */
  own?: { etcd: ProcRef; apiserver: ProcRef; dir: string };
  proxy?: ProcRef;
  /** Objects the lab created, in creation order; deleted in reverse at `lab down` when the API server outlives the lab. */
  created: ObjectRef[];
  /** Existing namespaces the lab labelled nodemesh.io/mesh=enabled (the label is removed at `lab down`). */
  labelled: string[];
  /** The install's workload kinds (DaemonSet, Deployment) the lab created and keeps the status of. */
  workloads?: string[];
  /** Per pod (by key): its CNI sandbox. */
  sandboxes: Record<string, PodSandbox>;
}

export function kubeDir(lab: string): string {
  return path.join(labDir(lab), 'kube');
}
export function apiServerDir(lab: string): string {
  return path.join(kubeDir(lab), 'apiserver');
}
export function adminKubeconfigPath(lab: string): string {
  return path.join(kubeDir(lab), 'admin.kubeconfig');
}
export function labCaFile(lab: string): string {
  return path.join(kubeDir(lab), 'apiserver-ca.pem');
}
export function controlPlaneKubeconfig(lab: string): string {
  return path.join(kubeDir(lab), 'controlplane.kubeconfig');
}

/** A node's CNI directories: the runtime's config and bin dirs, IPAM records, and nodemesh-cni's files. */
export function nodeCniDirs(lab: string, node: string): { confDir: string; binDir: string; ipamDir: string; hostDir: string; pluginConfig: string } {
  const base = path.join(nodeStateDir(lab, node), 'cni');
  return {
    confDir: path.join(base, 'net.d'),
    binDir: path.join(base, 'bin'),
    ipamDir: path.join(base, 'ipam'),
    hostDir: path.join(base, 'nodemesh'),
    pluginConfig: path.join(base, 'nodemesh-cni.json'),
  };
}

/** What the kubelet would mount into the agent pod: API credentials, the CA token, the mesh root. */
export function agentFiles(lab: string, node: string): { kubeconfig: string; caToken: string; root: string } {
  const base = path.join(nodeStateDir(lab, node), 'pod');
  return { kubeconfig: path.join(base, 'kubeconfig'), caToken: path.join(base, 'nodemesh-token'), root: path.join(base, 'root-cert.pem') };
}

export function agentPodName(node: string): string {
  return `nodemesh-agent-${node}`.slice(0, 253);
}

/** Where agents reach the control plane's TLS port (xDS, the CA). */
export const CP_SECURE_ADDRESS = `${LAB_API_ADDRESS}:${LAB_CP_SECURE_PORT}`;

/** The agent's flags in a Kubernetes-mode lab: the install's, with the lab's paths and addresses. */
export function kubeAgentArgs(state: LabState, n: NodeState): string[] {
  const files = agentFiles(state.lab, n.name);
  const dirs = nodeCniDirs(state.lab, n.name);
  return [
    '--xds', CP_SECURE_ADDRESS,
    '--xds-root-file', files.root,
    '--xds-token-file', files.caToken,
    '--ca-address', CP_SECURE_ADDRESS,
    '--ca-root-file', files.root,
    '--ca-token-file', files.caToken,
    '--kubernetes',
    '--kubeconfig', files.kubeconfig,
    '--proc-root', '/proc',
    '--cni-bin-dir', dirs.binDir,
    '--cni-conf-dir', dirs.confDir,
    '--cni-config', dirs.pluginConfig,
    '--cni-host-dir', dirs.hostDir,
  ];
}
