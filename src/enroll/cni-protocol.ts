// What the CNI plugin asks the node agent (POST /v1/cni on the enrollment socket) and what it answers. The plugin
// knows only what the runtime told it (pod name, namespace, uid, netns, IPs); the agent adds what the API says
// (service account, labels, annotations, whether the pod is to be meshed).

import { isIP } from 'node:net';
import { EnrollError } from './protocol';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

export interface CniEvent {
  command: CniCommand;
  namespace: string;
  name: string;
  /** K8S_POD_UID when the runtime passes it. */
  uid?: string;
  containerId: string;
  netnsPath: string;
  ips: string[];
}

export interface CniAnswer {
  /** The pod is (ADD, CHECK) or was (DEL) enrolled. */
  enrolled: boolean;
  /** Why not, when not: opted out, namespace not meshed, host network, ... */
  reason?: string;
}

function bad(field: string, what: string): EnrollError {
  return new EnrollError('NM_ENROLL_BAD_REQUEST', 400, `invalid CNI request: ${field} ${what}`);
}

export function parseCniEvent(body: string): CniEvent {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(body) as Record<string, unknown>;
  } catch (e) {
    throw new EnrollError('NM_ENROLL_MALFORMED_JSON', 400, `CNI request is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('body', 'must be a JSON object');
  if (o.command !== 'ADD' && o.command !== 'DEL' && o.command !== 'CHECK') throw bad('command', 'must be ADD, DEL or CHECK');
  for (const f of ['namespace', 'name', 'containerId', 'netnsPath'] as const) {
    if (typeof o[f] !== 'string') throw bad(f, 'must be a string');
  }
  if (o.uid !== undefined && typeof o.uid !== 'string') throw bad('uid', 'must be a string');
  if (!Array.isArray(o.ips) || !o.ips.every((ip) => typeof ip === 'string' && isIP(ip) !== 0)) throw bad('ips', 'must be a list of IP addresses');
  if (o.command === 'ADD' && (o.ips as string[]).length === 0) throw bad('ips', 'is empty: chain nodemesh-cni after the plugin that assigns the pod its IP');
  return {
    command: o.command,
    namespace: o.namespace as string,
    name: o.name as string,
    uid: o.uid as string | undefined,
    containerId: o.containerId as string,
    netnsPath: o.netnsPath as string,
    ips: o.ips as string[],
  };
}
