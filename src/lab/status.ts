// `lab status`: what the lab has (nodes, pods, IPs) and what is live (agent pid and readiness, enrollment).

import fs from 'node:fs';
import { routeStatusOfFiles } from '../controlplane/routes/offline-status';
import type { RouteStatus } from '../controlplane/routes/route-status';
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
  controlPlane: { pid: number; alive: boolean; xdsSocket: string; configDir: string; dashboardUrl: string | null; apiServer?: string } | null;
  /** Services as an agent received them over xDS (host, VIP:port, endpoint count). */
  services: { host: string; vip: string; port: number; endpoints: number }[];
  /** HTTPRoute / GRPCRoute status, computed from the config the lab's control plane watches (Kubernetes mode: as it wrote it to the API). */
  routes: RouteStatus[];
  errors: string[];
}

interface AgentServices {
  vips: { vip: string; port: number; cluster: string }[];
  clusters: { name: string; host: string; endpoints: unknown[] }[];
}

/** Services from the first agent that answers (every agent receives all services). */
async function servicesFromAgents(nodes: NodeStatus[]): Promise<LabStatus['services']> {
  for (const n of nodes.filter((x) => x.agentAlive)) {
    try {
      const res = await unixRequest(n.adminSocket, 'GET', '/config_dump', undefined, 2000);
      const svc = (JSON.parse(res.body) as { services?: AgentServices }).services;
      if (!svc) continue;
      return svc.vips
        .map((v) => {
          const c = svc.clusters.find((x) => x.name === v.cluster);
          return { host: c?.host ?? v.cluster, vip: v.vip, port: v.port, endpoints: c?.endpoints.length ?? 0 };
        })
        .sort((a, b) => a.host.localeCompare(b.host) || a.port - b.port);
    } catch {
      // try the next agent
    }
  }
  return [];
}

export async function labStatus(labName: string): Promise<LabStatus> {
  const state = readState(checkLabName(labName));
  const enrolledBy = new Map<string, Set<string> | undefined>();
  const nodes: NodeStatus[] = await Promise.all(
    state.nodes.map(async (n) => {
      const alive = procAlive(n.agent);
      let ready = false;
      if (alive) {
        ready = await unixRequest(n.adminSocket, 'GET', '/healthz/ready', undefined, 5000).then((r) => r.status === 200, () => false);
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
  const cp = state.controlPlane;
  return {
    lab: state.lab,
    phase: state.phase,
    createdAt: state.createdAt,
    nodes,
    pods,
    objects: state.objects,
    controlPlane: cp ? { pid: cp.ref.pid, alive: procAlive(cp.ref), xdsSocket: cp.xdsSocket, configDir: cp.configDir, dashboardUrl: cp.dashboardUrl ?? null, ...(state.kubernetes ? { apiServer: state.kubernetes.server } : {}) } : null,
    services: await servicesFromAgents(nodes),
    routes: state.kubernetes ? await (await import('./kube/route-status')).routeStatusFromApi(state.kubernetes.adminKubeconfig) : cp && fs.existsSync(cp.configDir) ? routeStatusOfFiles([cp.configDir]) : [],
    errors: state.errors,
  };
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
  if (s.services.length > 0) {
    const svcRows = [['SERVICE', 'VIP:PORT', 'ENDPOINTS']];
    for (const v of s.services) svcRows.push([v.host, `${v.vip}:${v.port}`, String(v.endpoints)]);
    lines.push('', table(svcRows));
  }
  if (s.routes.length > 0) {
    const routeRows = [['ROUTE', 'PARENT', 'ACCEPTED', 'RESOLVED REFS']];
    for (const r of s.routes) {
      const name = `${r.kind} ${r.namespace}/${r.name}`;
      if (r.parents.length === 0) routeRows.push([name, '-', r.invalid ? 'False (invalid)' : '-', '-']);
      for (const p of r.parents) {
        const [accepted, resolved] = p.conditions;
        const parent = `${p.parentRef.namespace}/${p.parentRef.name}${p.parentRef.port !== undefined ? `:${p.parentRef.port}` : ''}`;
        routeRows.push([name, parent, `${accepted?.status} (${accepted?.reason})`, `${resolved?.status} (${resolved?.reason})`]);
      }
    }
    lines.push('', table(routeRows));
    for (const r of s.routes) for (const i of r.invalid ?? []) lines.push(`  ${r.kind} ${r.namespace}/${r.name} invalid: ${i.file}:${i.line}: ${i.field ? `field ${i.field}: ` : ''}${i.message}`);
  }
  if (s.controlPlane) {
    const cp = s.controlPlane;
    lines.push('', `control plane: pid ${cp.pid}${cp.alive ? '' : ' (dead)'}, xDS at unix://${cp.xdsSocket}, watching ${cp.apiServer ? `the API server ${cp.apiServer}` : cp.configDir}`);
    if (cp.dashboardUrl) lines.push(`dashboard: ${cp.dashboardUrl}  (nodemesh dashboard --lab ${s.lab}; nodemesh top|tap|stat --lab ${s.lab})`);
  }
  if (s.errors.length > 0) lines.push('', 'errors:', ...s.errors.map((e) => `  ${e}`));
  return lines.join('\n');
}
