// `nodemesh dashboard`, served by the control plane: the web UI's static files and its JSON API (service
// graph, services, workloads, agents, traces, live tap over server-sent events, history from Prometheus when
// one is configured), plus OTLP/HTTP on /v1/traces. Its own listener (not the metrics port): more
// connections (tap streams stay open) and larger bodies (OTLP batches), still bounded.

import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import type { Logger } from '../../telemetry/logger';
import { validateTapFilter, type TapEvent } from '../../telemetry/tap/tap-filter';
import { NodemeshError } from '../../util/errors';
import { createBoundedServer } from '../../util/http';
import type { ObjectStore } from '../store';
import type { MeshDirectory } from './mesh-directory';
import { agents, serviceGraph, services, workloads } from './mesh-queries';
import type { OtlpReceiver } from './otlp-receiver';
import type { TapBroker } from './tap-broker';
import type { TraceStore } from './trace-store';

export interface DashboardDeps {
  dir: MeshDirectory;
  tap: TapBroker;
  traces: TraceStore | undefined;
  otlp: OtlpReceiver | undefined;
  store: ObjectStore;
  log: Logger;
  /** Prometheus base URL (`http://host:9090`): history beyond what the agents' reports keep. */
  prometheusUrl?: string;
  /** Where the built UI is (index.html and assets); default: dist/ui of this package. */
  uiDir?: string;
}

/** Connections at once: tap streams and page loads of many people on call. */
const MAX_CONNECTIONS = 512;
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json', '.ico': 'image/x-icon', '.png': 'image/png' };

export function defaultUiDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'dist', 'ui');
    if (fs.existsSync(path.join(candidate, 'index.html'))) return candidate;
    if (path.dirname(dir) === dir) return path.join(__dirname, 'ui-not-built');
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) }).end(text);
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: { code, message } });
}

/** `window` in seconds, 5 to the history kept (default 60). */
function windowMs(u: URL, maxMs: number): number {
  const w = u.searchParams.get('window');
  if (w === null) return 60_000;
  const n = Number(w);
  if (!Number.isFinite(n) || n < 5) throw new NodemeshError('NM_DASHBOARD_BAD_QUERY', `window must be a number of seconds, at least 5, not "${w}"`);
  return Math.min(n * 1000, maxMs);
}

export function createDashboardServer(d: DashboardDeps): http.Server {
  const ui = d.uiDir ?? defaultUiDir();
  const server = createBoundedServer(
    (req, res, body) => {
      handle(req, res, body).catch((err: unknown) => {
        if (err instanceof NodemeshError) {
          fail(res, 400, err.code, err.message);
          return;
        }
        d.log.error({ err, url: req.url }, 'dashboard request failed');
        if (!res.headersSent) fail(res, 500, 'NM_DASHBOARD_INTERNAL', (err as Error).message);
        else res.end();
      });
    },
    { name: 'dashboard', log: d.log, maxConnections: MAX_CONNECTIONS, maxBodyBytes: 4 << 20 },
  );

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://dashboard');
    const p = u.pathname;
    if (p === '/v1/traces') {
      if (req.method !== 'POST') return fail(res, 405, 'NM_DASHBOARD_METHOD', 'POST an OTLP ExportTraceServiceRequest (application/x-protobuf)');
      if (!d.otlp) return fail(res, 404, 'NM_DASHBOARD_NO_TRACES', 'the embedded trace store is off');
      if (!String(req.headers['content-type'] ?? '').includes('protobuf')) return fail(res, 415, 'NM_DASHBOARD_OTLP_TYPE', 'send application/x-protobuf (OTLP/JSON is not accepted)');
      try {
        d.otlp.accept(body, 'http');
      } catch (err) {
        return fail(res, 400, 'NM_DASHBOARD_OTLP_BODY', `not an OTLP ExportTraceServiceRequest: ${(err as Error).message}`);
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end();
      return;
    }
    if (req.method !== 'GET') return fail(res, 405, 'NM_DASHBOARD_METHOD', 'the dashboard API is read-only (GET)');
    const maxMs = d.dir.historySpanMs;
    switch (p) {
      case '/healthz/ready':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
        return;
      case '/api/graph':
        return json(res, 200, { windowS: windowMs(u, maxMs) / 1000, ...serviceGraph(d.dir, windowMs(u, maxMs)) });
      case '/api/services': {
        const history = u.searchParams.get('history') === '1' ? { spanMs: Math.min(maxMs, 10 * 60_000), stepMs: 15_000 } : undefined;
        const only = u.searchParams.get('service') ?? undefined;
        const routes = [...d.store.list('HTTPRoute'), ...d.store.list('GRPCRoute')];
        return json(res, 200, { windowS: windowMs(u, maxMs) / 1000, services: services(d.dir, windowMs(u, maxMs), { history, routes, only }) });
      }
      case '/api/workloads':
        return json(res, 200, { windowS: windowMs(u, maxMs) / 1000, workloads: workloads(d.dir, windowMs(u, maxMs)) });
      case '/api/agents':
        return json(res, 200, { agents: agents(d.dir) });
      case '/api/stat': {
        const w = windowMs(u, maxMs);
        return json(res, 200, { windowS: w / 1000, services: services(d.dir, w).map(({ service, signals }) => ({ service, ...signals })), workloads: workloads(d.dir, w) });
      }
      case '/api/traces': {
        if (!d.traces) return json(res, 200, { enabled: false, traces: [] });
        const limit = Math.min(Number(u.searchParams.get('limit') ?? 100) || 100, 1000);
        return json(res, 200, { enabled: true, size: d.traces.size, traces: d.traces.list({ failedOnly: u.searchParams.get('failed') === '1', service: u.searchParams.get('service') ?? undefined, limit }) });
      }
      case '/api/tap':
        return tapStream(res, u);
      case '/api/history':
        return history(res, u);
      case '/api/config':
        return json(res, 200, { prometheus: d.prometheusUrl ?? null, historyS: maxMs / 1000, traces: d.traces !== undefined });
    }
    if (p.startsWith('/api/traces/')) {
      const id = p.slice('/api/traces/'.length);
      if (!/^[0-9a-f]{32}$/.test(id)) return fail(res, 400, 'NM_DASHBOARD_BAD_QUERY', `"${id.slice(0, 40)}" is not a trace id (32 lower-case hex digits)`);
      const t = d.traces?.get(id);
      if (!t) return fail(res, 404, 'NM_DASHBOARD_NO_TRACE', `trace ${id} is not (or no longer) in the embedded store`);
      return json(res, 200, { ...t, summary: d.traces!.summarize(t) });
    }
    if (p.startsWith('/api/')) return fail(res, 404, 'NM_DASHBOARD_NOT_FOUND', `no API ${p}`);
    return staticFile(res, p);
  };

  const tapStream = (res: http.ServerResponse, u: URL): void => {
    const raw: Record<string, string> = {};
    for (const [k, v] of u.searchParams) raw[k] = v;
    let filter;
    try {
      filter = validateTapFilter(raw);
    } catch (err) {
      const e = err as NodemeshError;
      return fail(res, 400, e.code, e.message);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`event: filter\ndata: ${JSON.stringify(filter)}\n\n`);
    let writable = true;
    res.on('drain', () => (writable = true));
    const stop = d.tap.watch({
      filter,
      send: (events: TapEvent[], dropped: number) => {
        if (!writable) return false;
        let text = '';
        if (events.length > 0) text += `event: requests\ndata: ${JSON.stringify(events)}\n\n`;
        if (dropped > 0) text += `event: dropped\ndata: ${dropped}\n\n`;
        if (text) writable = res.write(text);
        return true;
      },
    });
    const ping = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    ping.unref();
    const end = (): void => {
      clearInterval(ping);
      stop();
    };
    // The response's close, not the request's: a request emits 'close' once its body is read (at once, here).
    res.on('close', end);
    res.on('error', end);
  };

  const history = async (res: http.ServerResponse, u: URL): Promise<void> => {
    if (!d.prometheusUrl) return fail(res, 404, 'NM_DASHBOARD_NO_PROMETHEUS', 'no Prometheus configured (controlplane --prometheus-url); the dashboard shows the agents\' last minutes only');
    const svc = u.searchParams.get('service') ?? '';
    if (!/^[a-z0-9.-]{1,253}$/.test(svc)) return fail(res, 400, 'NM_DASHBOARD_BAD_QUERY', 'service must be a service host name (name.namespace.svc.cluster.local)');
    const rangeS = Math.min(Math.max(Number(u.searchParams.get('range') ?? 3600) || 3600, 60), 7 * 86400);
    const step = Math.max(15, Math.round(rangeS / 240));
    const end = Math.floor(Date.now() / 1000);
    const sel = `reporter="source",destination_service="${svc}"`;
    const queries = {
      rps: `sum(rate(istio_requests_total{${sel}}[1m]))`,
      successRate: `sum(rate(istio_requests_total{${sel},response_code!~"5.."}[1m])) / sum(rate(istio_requests_total{${sel}}[1m]))`,
      p99: `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${sel}}[1m])))`,
    };
    const out: Record<string, [number, number][]> = {};
    for (const [k, q] of Object.entries(queries)) {
      const url = `${d.prometheusUrl.replace(/\/$/, '')}/api/v1/query_range?query=${encodeURIComponent(q)}&start=${end - rangeS}&end=${end}&step=${step}`;
      const r = (await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).json()) as { status: string; data?: { result?: { values?: [number, string][] }[] }; error?: string };
      if (r.status !== 'success') return fail(res, 502, 'NM_DASHBOARD_PROMETHEUS', `Prometheus answered: ${r.error ?? r.status}`);
      out[k] = (r.data?.result?.[0]?.values ?? []).map(([t, v]) => [t * 1000, Number(v)]);
    }
    json(res, 200, { service: svc, rangeS, stepS: step, series: out });
  };

  const staticFile = (res: http.ServerResponse, p: string): void => {
    const rel = p === '/' ? 'index.html' : path.normalize(p).replace(/^([/\\])+/, '');
    let file = path.join(ui, rel);
    if (!file.startsWith(ui) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(ui, 'index.html');
    if (!fs.existsSync(file)) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`the dashboard UI is not built (${ui}): run npm run build:ui\n`);
      return;
    }
    const data = fs.readFileSync(file);
    const immutable = file.includes(`${path.sep}assets${path.sep}`);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': data.length, 'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache' }).end(data);
  };

  return server;
}
