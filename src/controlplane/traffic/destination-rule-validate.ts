// Validates Istio DestinationRule (networking.istio.io/v1, v1beta1) into the agent's shapes, every problem with
// its field path. What Istio's schema refuses is refused here too; what nodemesh does not do is refused with
// what to do instead (nothing is half-applied); subsets are read (no HTTPRoute can name one) and reported.
//
// Defaults are Istio's: unset limits are unlimited, and 0 means unset for the connection-pool counts (Istio
// translates only values above 0); outlier detection: consecutive5xxErrors 5, interval 10s,
// baseEjectionTime 30s, maxEjectionPercent 10, minHealthPercent 0.

import type { RoutePolicy } from '../../state/routes';
import type { LoadBalancing } from '../../state/services';
import { Checker, readMeta, SUBDOMAIN, type FieldPath, type Json } from '../checker';
import { goDuration } from './go-duration';
import type { DestinationRuleObject, TrafficPolicy } from './traffic-objects';

/** Our extension of `loadBalancer.simple`: Linkerd's latency-aware balancer. */
export const PEAK_EWMA = 'PEAK_EWMA';
const SIMPLE = ['UNSPECIFIED', 'LEAST_REQUEST', 'LEAST_CONN', 'ROUND_ROBIN', 'RANDOM', 'PASSTHROUGH', PEAK_EWMA] as const;
const INT32 = 2 ** 31 - 1;
const HOST = /^(\*|\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/;
/** Envoy's bounds on ring and table sizes. */
const MAX_RING = 8_388_608;
const MAX_MAGLEV = 5_000_011;

/** Fields Istio defines that nodemesh does not honour, with what to do instead. */
function refuse(c: Checker, m: Json, path: FieldPath, fields: Record<string, string>): void {
  for (const [f, why] of Object.entries(fields)) if (m[f] !== undefined && m[f] !== null) c.fail([...path, f], `is not supported: ${why}`);
}

/** A count where Istio reads 0 as "not set" (it translates only values above 0). */
function count(c: Checker, v: unknown, path: FieldPath): number | undefined {
  const n = c.int(v, path, false, 0, INT32);
  return n === undefined || n === 0 ? undefined : n;
}

function consistentHash(c: Checker, raw: unknown, path: FieldPath): { lb: LoadBalancing; hash: NonNullable<RoutePolicy['hash']> } | undefined {
  const m = c.map(raw, path, true);
  if (!m) return undefined;
  c.unknownFields(m, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize']);
  const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'].filter((k) => m[k] !== undefined && m[k] !== null);
  if (keys.length !== 1) {
    c.fail(path, `must set exactly one hash key (httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName), got ${keys.length === 0 ? 'none' : keys.join(', ')}`);
    return undefined;
  }
  let hash: NonNullable<RoutePolicy['hash']>[number] | undefined;
  const key = keys[0]!;
  if (key === 'httpHeaderName') {
    const h = c.string(m.httpHeaderName, [...path, key], true, { re: /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, what: 'an HTTP header name' });
    if (h !== undefined) hash = { kind: 'header', name: h.toLowerCase() };
  } else if (key === 'httpQueryParameterName') {
    const q = c.string(m.httpQueryParameterName, [...path, key], true);
    if (q !== undefined && q.length === 0) c.fail([...path, key], 'must not be empty');
    else if (q !== undefined) hash = { kind: 'query', name: q };
  } else if (key === 'useSourceIp') {
    if (m.useSourceIp !== true) c.fail([...path, key], 'must be true when set (it is the hash key)');
    else hash = { kind: 'sourceIp' };
  } else {
    const cp = [...path, 'httpCookie'];
    const ck = c.map(m.httpCookie, cp, true) ?? {};
    c.unknownFields(ck, cp, ['name', 'path', 'ttl', 'attributes']);
    refuse(c, ck, cp, { attributes: 'the agent sets the cookie with Path, Max-Age and HttpOnly only' });
    const name = c.string(ck.name, [...cp, 'name'], true, { re: /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, what: 'a cookie name' });
    const cookiePath = c.string(ck.path, [...cp, 'path'], false);
    const ttlMs = goDuration(c, ck.ttl, [...cp, 'ttl']);
    if (name !== undefined) {
      const h: Extract<NonNullable<RoutePolicy['hash']>[number], { kind: 'cookie' }> = { kind: 'cookie', name };
      if (cookiePath !== undefined) h.path = cookiePath;
      if (ttlMs !== undefined) h.ttlMs = ttlMs;
      hash = h;
    }
  }
  if (m.ringHash !== undefined && m.maglev !== undefined) c.fail([...path, 'maglev'], 'ringHash and maglev are one choice: set one');
  let lb: LoadBalancing = { kind: 'ring_hash' };
  if (m.maglev !== undefined) {
    const mp = [...path, 'maglev'];
    const mg = c.map(m.maglev, mp, true) ?? {};
    c.unknownFields(mg, mp, ['tableSize']);
    const size = c.int(mg.tableSize, [...mp, 'tableSize'], false, 1, MAX_MAGLEV);
    lb = size === undefined ? { kind: 'maglev' } : { kind: 'maglev', tableSize: size };
  } else {
    const rp = [...path, 'ringHash'];
    const rh = c.map(m.ringHash, rp, false) ?? {};
    c.unknownFields(rh, rp, ['minimumRingSize']);
    const size = c.int(rh.minimumRingSize, [...rp, 'minimumRingSize'], false, 1, MAX_RING) ?? c.int(m.minimumRingSize, [...path, 'minimumRingSize'], false, 1, MAX_RING);
    if (size !== undefined) lb = { kind: 'ring_hash', minRingSize: size };
  }
  return hash ? { lb, hash: [hash] } : undefined;
}

function loadBalancer(c: Checker, raw: unknown, path: FieldPath): NonNullable<TrafficPolicy['loadBalancer']> {
  const m = c.map(raw, path, true) ?? {};
  c.unknownFields(m, path, ['simple', 'consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup']);
  refuse(c, m, path, { warmupDurationSecs: 'endpoints take their share at once', warmup: 'endpoints take their share at once' });
  const out: NonNullable<TrafficPolicy['loadBalancer']> = {};
  if (m.simple !== undefined && m.consistentHash !== undefined) c.fail([...path, 'consistentHash'], 'simple and consistentHash are one choice: set one');
  if (m.simple !== undefined) {
    const s = c.oneOf(m.simple, [...path, 'simple'], SIMPLE);
    if (s === 'PASSTHROUGH') c.fail([...path, 'simple'], 'PASSTHROUGH is not supported: the agent balances over the Service\'s endpoints (use LEAST_REQUEST, ROUND_ROBIN, RANDOM or PEAK_EWMA)');
    else if (s === 'ROUND_ROBIN') out.lb = { kind: 'round_robin' };
    else if (s === 'RANDOM') out.lb = { kind: 'random' };
    else if (s === PEAK_EWMA) out.lb = { kind: 'peak_ewma' };
    else if (s !== undefined) out.lb = { kind: 'least_request' };
  } else if (m.consistentHash !== undefined) {
    const h = consistentHash(c, m.consistentHash, [...path, 'consistentHash']);
    if (h) {
      out.lb = h.lb;
      out.hash = h.hash;
    }
  }
  if (m.localityLbSetting !== undefined) {
    const lp = [...path, 'localityLbSetting'];
    const l = c.map(m.localityLbSetting, lp, true) ?? {};
    c.unknownFields(l, lp, ['enabled', 'distribute', 'failover', 'failoverPriority']);
    const why = 'nodemesh prefers the client\'s node, then its zone, and fails over to any healthy endpoint';
    refuse(c, l, lp, { distribute: why, failover: why, failoverPriority: why });
    if (l.enabled !== undefined && typeof l.enabled !== 'boolean') c.fail([...lp, 'enabled'], `must be true or false, got ${JSON.stringify(l.enabled)}`);
    // Istio: a localityLbSetting without `enabled` is enabled.
    out.locality = l.enabled !== false;
  }
  return out;
}

function connectionPool(c: Checker, raw: unknown, path: FieldPath): NonNullable<TrafficPolicy['connectionPool']> {
  const m = c.map(raw, path, true) ?? {};
  c.unknownFields(m, path, ['tcp', 'http']);
  const out: NonNullable<TrafficPolicy['connectionPool']> = {};
  if (m.tcp !== undefined) {
    const tp = [...path, 'tcp'];
    const t = c.map(m.tcp, tp, true) ?? {};
    c.unknownFields(t, tp, ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
    refuse(c, t, tp, {
      tcpKeepalive: 'the agent keeps pooled connections alive with HTTP/2 PING on HBONE',
      maxConnectionDuration: 'connections live until idle (use http.idleTimeout or http.maxRequestsPerConnection)',
      idleTimeout: 'use http.idleTimeout (the agent pools HTTP connections)',
    });
    const max = count(c, t.maxConnections, [...tp, 'maxConnections']);
    if (max !== undefined) out.maxConnections = max;
    const ct = goDuration(c, t.connectTimeout, [...tp, 'connectTimeout'], 1);
    if (ct !== undefined) out.connectTimeoutMs = ct;
  }
  if (m.http !== undefined) {
    const hp = [...path, 'http'];
    const h = c.map(m.http, hp, true) ?? {};
    c.unknownFields(h, hp, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams']);
    refuse(c, h, hp, {
      h2UpgradePolicy: 'the upstream HTTP version follows the Service port\'s protocol (appProtocol)',
      useClientProtocol: 'the upstream HTTP version follows the Service port\'s protocol (appProtocol)',
      maxConcurrentStreams: 'use http2MaxRequests (requests in flight to the Service)',
    });
    const fields = ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries'] as const;
    for (const f of fields) {
      const n = count(c, h[f], [...hp, f]);
      if (n !== undefined) out[f] = n;
    }
    const idle = goDuration(c, h.idleTimeout, [...hp, 'idleTimeout'], 1);
    if (idle !== undefined) out.idleTimeoutMs = idle;
  }
  return out;
}

function outlierDetection(c: Checker, raw: unknown, path: FieldPath): NonNullable<TrafficPolicy['outlierDetection']> {
  const m = c.map(raw, path, true) ?? {};
  c.unknownFields(m, path, [
    'consecutive5xxErrors',
    'consecutiveGatewayErrors',
    'consecutiveErrors',
    'consecutiveLocalOriginFailures',
    'splitExternalLocalOriginErrors',
    'interval',
    'baseEjectionTime',
    'maxEjectionPercent',
    'minHealthPercent',
  ]);
  refuse(c, m, path, {
    consecutiveErrors: 'it is deprecated; use consecutive5xxErrors or consecutiveGatewayErrors',
    consecutiveLocalOriginFailures: 'connect failures count as 5xx and gateway errors',
    splitExternalLocalOriginErrors: 'connect failures count as 5xx and gateway errors',
  });
  const num = (f: string): number | undefined => c.int(m[f], [...path, f], false, 0, INT32);
  const out: NonNullable<TrafficPolicy['outlierDetection']> = {
    consecutive5xxErrors: num('consecutive5xxErrors') ?? 5,
    intervalMs: goDuration(c, m.interval, [...path, 'interval'], 1) ?? 10_000,
    baseEjectionMs: goDuration(c, m.baseEjectionTime, [...path, 'baseEjectionTime'], 1) ?? 30_000,
    maxEjectionPercent: c.int(m.maxEjectionPercent, [...path, 'maxEjectionPercent'], false, 0, 100) ?? 10,
    minHealthPercent: c.int(m.minHealthPercent, [...path, 'minHealthPercent'], false, 0, 100) ?? 0,
  };
  const gw = num('consecutiveGatewayErrors');
  if (gw !== undefined && gw > 0) out.consecutiveGatewayErrors = gw;
  return out;
}

function retryBudget(c: Checker, raw: unknown, path: FieldPath): TrafficPolicy['retryBudget'] {
  const m = c.map(raw, path, true) ?? {};
  c.unknownFields(m, path, ['percent', 'minRetryConcurrency']);
  let percent = 20;
  if (m.percent !== undefined) {
    if (typeof m.percent !== 'number' || !Number.isFinite(m.percent) || m.percent < 0 || m.percent > 100) {
      c.fail([...path, 'percent'], `must be a number 0-100 (a percentage of active requests), got ${JSON.stringify(m.percent)}`);
    } else percent = m.percent;
  }
  return { percent, minRetryConcurrency: c.int(m.minRetryConcurrency, [...path, 'minRetryConcurrency'], false, 0, INT32) ?? 3 };
}

function tls(c: Checker, raw: unknown, path: FieldPath): void {
  const m = c.map(raw, path, true) ?? {};
  const mode = c.string(m.mode, [...path, 'mode'], false);
  const extra = Object.keys(m).filter((k) => k !== 'mode');
  if ((mode !== undefined && mode !== 'ISTIO_MUTUAL') || extra.length > 0) {
    c.fail(path, 'only mode ISTIO_MUTUAL is supported: the mesh carries requests over its own mTLS (HBONE); PeerAuthentication sets what a workload accepts');
  }
}

function trafficPolicy(c: Checker, raw: unknown, path: FieldPath, level: 'rule' | 'port'): { policy: TrafficPolicy; ports: unknown } {
  const m = c.map(raw, path, true) ?? {};
  const known = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'];
  c.unknownFields(m, path, level === 'port' ? ['port', ...known] : [...known, 'portLevelSettings', 'retryBudget', 'tunnel', 'proxyProtocol']);
  refuse(c, m, path, { tunnel: 'the mesh tunnels over HBONE itself', proxyProtocol: 'the agent sends no PROXY protocol header' });
  const policy: TrafficPolicy = {};
  if (m.loadBalancer !== undefined) policy.loadBalancer = loadBalancer(c, m.loadBalancer, [...path, 'loadBalancer']);
  if (m.connectionPool !== undefined) policy.connectionPool = connectionPool(c, m.connectionPool, [...path, 'connectionPool']);
  if (m.outlierDetection !== undefined) policy.outlierDetection = outlierDetection(c, m.outlierDetection, [...path, 'outlierDetection']);
  if (m.tls !== undefined) tls(c, m.tls, [...path, 'tls']);
  if (level === 'rule' && m.retryBudget !== undefined) policy.retryBudget = retryBudget(c, m.retryBudget, [...path, 'retryBudget']);
  return { policy, ports: m.portLevelSettings };
}

export function validateDestinationRule(c: Checker, doc: Json, apiVersion: string): DestinationRuleObject {
  const meta = readMeta(c, doc, SUBDOMAIN);
  const spec = c.map(doc.spec, ['spec'], true) ?? {};
  c.unknownFields(spec, ['spec'], ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector']);
  refuse(c, spec, ['spec'], { workloadSelector: 'it selects sidecars; the node agent is every pod\'s proxy' });
  const host = c.string(spec.host, ['spec', 'host'], true, { re: HOST, what: 'a host (a Service name, its FQDN, or a "*." wildcard)' }) ?? '';
  const exportTo = c.array(spec.exportTo, ['spec', 'exportTo'], false);
  exportTo.forEach((e, i) => {
    if (e !== '*') c.fail(['spec', 'exportTo', i], `only "*" is supported: a Service's clusters are the same for every client namespace (got ${JSON.stringify(e)})`);
  });
  const dr: DestinationRuleObject = { kind: 'DestinationRule', meta, apiVersion, host, trafficPolicy: {}, portLevel: [], subsets: [] };
  if (spec.trafficPolicy !== undefined) {
    const tp = trafficPolicy(c, spec.trafficPolicy, ['spec', 'trafficPolicy'], 'rule');
    dr.trafficPolicy = tp.policy;
    const seen = new Set<number>();
    c.array(tp.ports, ['spec', 'trafficPolicy', 'portLevelSettings'], false).forEach((raw, i) => {
      const p: FieldPath = ['spec', 'trafficPolicy', 'portLevelSettings', i];
      const pm = c.map(raw, p, true) ?? {};
      const portMap = c.map(pm.port, [...p, 'port'], true) ?? {};
      c.unknownFields(portMap, [...p, 'port'], ['number']);
      const port = c.port(portMap.number, [...p, 'port', 'number'], true);
      const policy = trafficPolicy(c, pm, p, 'port').policy;
      if (port === undefined) return;
      if (seen.has(port)) c.fail([...p, 'port', 'number'], `port ${port} has two portLevelSettings`);
      seen.add(port);
      dr.portLevel.push({ port, policy });
    });
  }
  c.array(spec.subsets, ['spec', 'subsets'], false).forEach((raw, i) => {
    const p: FieldPath = ['spec', 'subsets', i];
    const s = c.map(raw, p, true) ?? {};
    c.unknownFields(s, p, ['name', 'labels', 'trafficPolicy']);
    const name = c.string(s.name, [...p, 'name'], true);
    c.stringMap(s.labels, [...p, 'labels']);
    if (s.trafficPolicy !== undefined) trafficPolicy(c, s.trafficPolicy, [...p, 'trafficPolicy'], 'rule');
    if (name !== undefined) dr.subsets.push(name);
  });
  return dr;
}
