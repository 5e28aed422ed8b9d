// The dashboard's and the CLI's questions, answered from the agents' reports (MeshDirectory): the service
// graph with each edge's rate, success rate, p99 and mTLS; golden signals per service and per workload, with
// a short history; routes with their weights; endpoints with health and outlier state; the agents.

import type { StoredObject } from '../objects';
import type { MeshDirectory, RequestDelta } from './mesh-directory';
import { quantile } from './mesh-directory';
import type { AgentView, GraphEdge, GraphNode, RouteView, ServiceView, Signals, WorkloadView } from './dashboard-api';

export type { AgentView, GraphEdge, GraphNode, RouteView, ServiceView, Signals, WorkloadView };


interface Acc {
  rps: number;
  requests: number;
  errors: number;
  buckets: number[];
}

const UNKNOWN = 'unknown';

function failed(l: Record<string, string>): boolean {
  return l.response_code!.startsWith('5') || l.response_code === '0';
}

function add(acc: Acc | undefined, d: RequestDelta): Acc {
  const a = acc ?? { rps: 0, requests: 0, errors: 0, buckets: [] };
  a.rps += d.count / d.seconds;
  a.requests += d.count;
  if (failed(d.labels)) a.errors += d.count;
  for (let i = 0; i < d.buckets.length; i++) a.buckets[i] = (a.buckets[i] ?? 0) + d.buckets[i]!;
  return a;
}

function signals(a: Acc | undefined): Signals {
  if (!a || a.requests === 0) return { rps: 0, successRate: null, p50: null, p95: null, p99: null, requests: 0, errors: 0 };
  const r = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    rps: Math.round(a.rps * 1000) / 1000,
    successRate: Math.round(((a.requests - a.errors) / a.requests) * 10000) / 10000,
    p50: r(quantile(0.5, a.buckets)),
    p95: r(quantile(0.95, a.buckets)),
    p99: r(quantile(0.99, a.buckets)),
    requests: a.requests,
    errors: a.errors,
  };
}

function group(deltas: RequestDelta[], key: (d: RequestDelta) => string | null): Map<string, Acc> {
  const m = new Map<string, Acc>();
  for (const d of deltas) {
    const k = key(d);
    if (k !== null) m.set(k, add(m.get(k), d));
  }
  return m;
}

const wl = (name: string, ns: string): string => `${name}.${ns}`;

/** A service node from its host name (`name.ns.svc.cluster.local`); TCP series carry only the host. */
function serviceNode(host: string): GraphNode {
  const [name = host, namespace = UNKNOWN] = host.split('.');
  return { id: `svc:${host}`, kind: 'service', name, namespace };
}



/**
 * Who calls whom over the window: workload → service edges from the callers' agents (reporter=source), and
 * service → workload edges from the servers' agents (reporter=destination), which also show callers outside
 * the mesh. TCP-only pairs come from istio_tcp_*.
 */
export function serviceGraph(dir: MeshDirectory, windowMs: number): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const deltas = dir.requestDeltas(windowMs);
  const nodes = new Map<string, GraphNode>();
  const node = (n: GraphNode): string => {
    if (!nodes.has(n.id)) nodes.set(n.id, n);
    return n.id;
  };
  const edges = new Map<string, { e: Omit<GraphEdge, 'signals'>; acc: Acc | undefined; mtlsAll: boolean }>();
  const edge = (source: string, target: string, protocol: GraphEdge['protocol'], mtls: boolean, d: RequestDelta): void => {
    const k = `${source}\u0001${target}\u0001${protocol}`;
    const cur = edges.get(k) ?? { e: { source, target, protocol, mtls }, acc: undefined, mtlsAll: true };
    cur.acc = add(cur.acc, d);
    cur.mtlsAll = cur.mtlsAll && mtls;
    edges.set(k, cur);
  };
  for (const d of deltas) {
    const l = d.labels;
    const svc = l.destination_service ?? UNKNOWN;
    const protocol = l.request_protocol === 'grpc' ? 'grpc' : 'http';
    const mtls = l.connection_security_policy === 'mutual_tls';
    const svcId = node(serviceNode(svc));
    if (l.reporter === 'source') {
      const src = node({ id: `wl:${wl(l.source_workload!, l.source_workload_namespace!)}`, kind: 'workload', name: l.source_workload!, namespace: l.source_workload_namespace! });
      edge(src, svcId, protocol, mtls, d);
    } else {
      const dst = node({ id: `wl:${wl(l.destination_workload!, l.destination_workload_namespace!)}`, kind: 'workload', name: l.destination_workload!, namespace: l.destination_workload_namespace! });
      edge(svcId, dst, protocol, mtls, d);
      // A caller no source agent reported (outside the mesh, or plaintext): its edge comes from here.
      if (l.source_principal === UNKNOWN && l.connection_security_policy !== 'mutual_tls') {
        const src = l.source_workload !== UNKNOWN ? node({ id: `wl:${wl(l.source_workload!, l.source_workload_namespace!)}`, kind: 'workload', name: l.source_workload!, namespace: l.source_workload_namespace! }) : node({ id: 'outside', kind: 'outside', name: 'outside the mesh', namespace: '' });
        edge(src, svcId, protocol, false, d);
      }
    }
  }
  const out: GraphEdge[] = [...edges.values()].map((x) => ({ ...x.e, mtls: x.mtlsAll, signals: signals(x.acc) }));
  // TCP: source-reported pairs with no HTTP edge.
  const tcp = new Map<string, GraphEdge>();
  for (const t of dir.tcpDeltas(windowMs)) {
    const l = t.labels;
    if (l.reporter !== 'source') continue;
    const src = node({ id: `wl:${wl(l.source_workload!, l.source_workload_namespace!)}`, kind: 'workload', name: l.source_workload!, namespace: l.source_workload_namespace! });
    const svc = l.destination_service && l.destination_service !== UNKNOWN ? l.destination_service : wl(l.destination_workload ?? UNKNOWN, l.destination_workload_namespace ?? UNKNOWN);
    const dst = l.destination_service && l.destination_service !== UNKNOWN ? node(serviceNode(svc)) : node({ id: `wl:${svc}`, kind: 'workload', name: l.destination_workload ?? UNKNOWN, namespace: l.destination_workload_namespace ?? UNKNOWN });
    if (out.some((e) => e.source === src && e.target === dst)) continue;
    const k = `${src}\u0001${dst}`;
    const e = tcp.get(k) ?? { source: src, target: dst, protocol: 'tcp' as const, mtls: true, signals: signals(undefined), bytesPerSecond: 0, connectionsPerSecond: 0 };
    e.bytesPerSecond! += t.bytes / t.seconds;
    e.connectionsPerSecond! += t.opened / t.seconds;
    e.mtls = e.mtls && l.connection_security_policy === 'mutual_tls';
    tcp.set(k, e);
  }
  for (const e of tcp.values()) out.push({ ...e, bytesPerSecond: Math.round(e.bytesPerSecond!), connectionsPerSecond: Math.round(e.connectionsPerSecond! * 1000) / 1000 });
  return { nodes: [...nodes.values()], edges: out };
}

/** Signals by key over the window, from the reporter that sees it best (source if any, else destination). */
function byService(deltas: RequestDelta[]): Map<string, Acc> {
  const src = group(deltas, (d) => (d.labels.reporter === 'source' ? d.labels.destination_service! : null));
  const dst = group(deltas, (d) => (d.labels.reporter === 'destination' ? d.labels.destination_service! : null));
  for (const [k, v] of dst) if (!src.has(k)) src.set(k, v);
  return src;
}


/** HTTPRoutes and GRPCRoutes whose parentRefs name the Service, with their backends' weights. */
export function routesFor(routes: StoredObject[], service: string, namespace: string): RouteView[] {
  const out: RouteView[] = [];
  for (const r of routes) {
    const raw = (r.raw ?? {}) as { kind?: string; metadata?: { name?: string; namespace?: string }; spec?: { parentRefs?: { kind?: string; name?: string; namespace?: string }[]; rules?: { matches?: unknown[]; backendRefs?: { name?: string; port?: number; weight?: number }[] }[] } };
    const ns = raw.metadata?.namespace ?? 'default';
    const parents = raw.spec?.parentRefs ?? [];
    if (!parents.some((p) => (p.kind ?? 'Service') === 'Service' && p.name === service && (p.namespace ?? ns) === namespace)) continue;
    out.push({
      name: raw.metadata?.name ?? '',
      namespace: ns,
      kind: raw.kind ?? 'HTTPRoute',
      rules: (raw.spec?.rules ?? []).map((rule) => ({
        matches: (rule.matches ?? []).map((m) => JSON.stringify(m)),
        backends: (rule.backendRefs ?? []).map((b) => ({ name: b.name ?? '', port: b.port, weight: b.weight ?? 1 })),
      })),
    });
  }
  return out;
}


export function services(dir: MeshDirectory, windowMs: number, o: { history?: { spanMs: number; stepMs: number }; routes?: StoredObject[]; only?: string } = {}): ServiceView[] {
  const deltas = dir.requestDeltas(windowMs);
  const main = byService(deltas);
  const byWorkload = group(deltas, (d) => (d.labels.reporter === 'destination' ? `${d.labels.destination_service}\u0001${d.labels.destination_workload}\u0001${d.labels.destination_workload_namespace}` : null));
  const now = Date.now();
  const reports = dir.reports();
  const out: ServiceView[] = [];
  for (const [svc, acc] of main) {
    if (o.only !== undefined && svc !== o.only && svc.split('.')[0] !== o.only) continue;
    const [name = svc, namespace = UNKNOWN] = svc.split('.');
    const history: ServiceView['history'] = [];
    if (o.history) {
      for (let t = now - o.history.spanMs + o.history.stepMs; t <= now; t += o.history.stepMs) {
        const a = byService(dir.requestDeltas(o.history.stepMs, t)).get(svc);
        const s = signals(a);
        history.push({ time: t, rps: s.rps, successRate: s.successRate, p99: s.p99 });
      }
    }
    const workloads = [...byWorkload].filter(([k]) => k.startsWith(`${svc}\u0001`)).map(([k, a]) => ({ workload: k.split('\u0001')[1]!, namespace: k.split('\u0001')[2]!, signals: signals(a) }));
    const endpoints = new Map<string, ServiceView['endpoints'][number]>();
    for (const r of reports) {
      for (const ep of r.report.endpoints) {
        if (!ep.cluster.endsWith(`|${svc}`)) continue;
        const cur = endpoints.get(ep.address) ?? { address: ep.address, pod: ep.pod, cluster: ep.cluster, healthy: true, ejected: false, active: 0, consecutive5xx: 0, ejections: 0, seenBy: [] };
        cur.ejected = cur.ejected || ep.ejected;
        cur.healthy = !cur.ejected;
        cur.active += ep.active;
        cur.consecutive5xx = Math.max(cur.consecutive5xx, ep.consecutive_5xx);
        cur.ejections += ep.ejections;
        cur.seenBy.push(r.report.node);
        endpoints.set(ep.address, cur);
      }
    }
    out.push({ service: svc, name, namespace, signals: signals(acc), history, workloads, endpoints: [...endpoints.values()], routes: o.routes ? routesFor(o.routes, name, namespace) : [] });
  }
  return out.sort((a, b) => b.signals.rps - a.signals.rps || a.service.localeCompare(b.service));
}


export function workloads(dir: MeshDirectory, windowMs: number): WorkloadView[] {
  const deltas = dir.requestDeltas(windowMs);
  const inbound = group(deltas, (d) => (d.labels.reporter === 'destination' ? wl(d.labels.destination_workload!, d.labels.destination_workload_namespace!) : null));
  const outbound = group(deltas, (d) => (d.labels.reporter === 'source' ? wl(d.labels.source_workload!, d.labels.source_workload_namespace!) : null));
  const keys = new Set([...inbound.keys(), ...outbound.keys()]);
  return [...keys]
    .map((k) => {
      const i = k.lastIndexOf('.');
      return { workload: k.slice(0, i), namespace: k.slice(i + 1), inbound: signals(inbound.get(k)), outbound: signals(outbound.get(k)) };
    })
    .sort((a, b) => b.inbound.rps + b.outbound.rps - (a.inbound.rps + a.outbound.rps));
}


export function agents(dir: MeshDirectory): AgentView[] {
  const now = Date.now();
  return dir
    .reports()
    .map(({ report: r, receivedAt, connected, cpuRate }) => ({
      node: r.node,
      version: r.version,
      connected,
      ready: r.ready,
      notReadyReason: r.not_ready_reason,
      lastReportAgoMs: now - receivedAt,
      uptimeS: Math.round((r.time_ms - r.started_at_ms) / 1000),
      cpuCores: Math.round(cpuRate * 1000) / 1000,
      rssBytes: r.rss_bytes,
      heapUsedBytes: r.heap_used_bytes,
      threads: r.threads,
      pods: r.pods,
      xds: r.xds ? { connected: r.xds.connected, synced: r.xds.synced, mode: r.xds.mode, lastNack: r.xds.last_nack, lastError: r.xds.last_error } : null,
      certificates: r.certificates.map((c) => ({ identity: c.identity, serial: c.serial, notAfter: c.not_after_ms, expiresInS: Math.round((c.not_after_ms - now) / 1000), state: c.state, lastError: c.last_error })),
      tracing: r.tracing ? { endpoint: r.tracing.endpoint, exported: r.tracing.exported, dropped: r.tracing.dropped, defaultPercent: r.tracing.default_percent } : null,
    }))
    .sort((a, b) => a.node.localeCompare(b.node));
}
