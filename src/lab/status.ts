// `lab status`: what the lab has (nodes, pods, IPs) and what is live (agent pid and readiness, enrollment).

import { EnrollClient, unixRequest } from '../enroll/client';
import { checkLabName } from './paths';
import { procAlive, readState } from './state';

export interface NodeStatus {
  name: string;
  netns: string;
  fabricIP: string;
  cidr: string;
  agentPid: number | null;
  agentAlive: boolean;
  ready: boolean;
  adminSocket: string;
}

export interface PodStatus {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  netns: string;
  /** What the manifest asks for. */
  enroll: boolean;
  /** What the node agent reports now (falls back to the recorded result if the agent is unreachable). */
  enrolled: boolean;
  containers: { name: string; pid: number | null; running: boolean }[];
}

export interface LabStatus {
  lab: string;
  phase: string;
  createdAt: string;
  nodes: NodeStatus[];
  pods: PodStatus[];
  objects: { kind: string; namespace: string; name: string }[];
  errors: string[];
}

export async function labStatus(labName: string): Promise<LabStatus> {
  const state = readState(checkLabName(labName));
  const enrolledBy = new Map<string, Set<string> | undefined>();
  const nodes: NodeStatus[] = await Promise.all(
    state.nodes.map(async (n) => {
      const alive = procAlive(n.agent);
      let ready = false;
      if (alive) {
        ready = await unixRequest(n.adminSocket, 'GET', '/healthz/ready', undefined, 2000).then((r) => r.status === 200, () => false);
        const uids = await new EnrollClient(n.enrollSocket).list().then((pods) => new Set(pods.map((p) => p.uid)), () => undefined);
        enrolledBy.set(n.name, uids);
      }
      return { name: n.name, netns: n.netns, fabricIP: n.fabricIP, cidr: n.cidr, agentPid: n.agent?.pid ?? null, agentAlive: alive, ready, adminSocket: n.adminSocket };
    }),
  );
  const pods: PodStatus[] = state.pods.map((p) => {
    const live = enrolledBy.get(p.node);
    const agentUp = nodes.find((n) => n.name === p.node)?.agentAlive ?? false;
    return {
      namespace: p.namespace,
      name: p.name,
      node: p.node,
      ip: p.ip,
      netns: p.netns,
      enroll: p.enroll,
      enrolled: live ? live.has(p.uid) : agentUp ? p.enrolled : false,
      containers: p.containers.map((c) => ({ name: c.name, pid: c.proc?.pid ?? null, running: procAlive(c.proc) })),
    };
  });
  return { lab: state.lab, phase: state.phase, createdAt: state.createdAt, nodes, pods, objects: state.objects, errors: state.errors };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function formatStatus(s: LabStatus): string {
  const nodeRows = [['NODE', 'FABRIC IP', 'POD CIDR', 'AGENT PID', 'READY']];
  for (const n of s.nodes) nodeRows.push([n.name, n.fabricIP, n.cidr, n.agentPid === null ? '-' : `${n.agentPid}${n.agentAlive ? '' : ' (dead)'}`, n.ready ? 'yes' : 'no']);
  const podRows = [['POD', 'NODE', 'IP', 'ENROLLED', 'CONTAINERS']];
  for (const p of s.pods) {
    const running = p.containers.filter((c) => c.running).length;
    podRows.push([`${p.namespace}/${p.name}`, p.node, p.ip, p.enroll ? (p.enrolled ? 'yes' : 'NO (failed)') : 'no (opted out)', `${running}/${p.containers.length} running`]);
  }
  const lines = [`lab ${s.lab}: ${s.phase}, created ${s.createdAt}`, '', table(nodeRows), '', table(podRows)];
  if (s.objects.length > 0) lines.push('', `other objects (not used yet): ${s.objects.map((o) => `${o.kind} ${o.namespace}/${o.name}`).join(', ')}`);
  if (s.errors.length > 0) lines.push('', 'errors:', ...s.errors.map((e) => `  ${e}`));
  return lines.join('\n');
}
