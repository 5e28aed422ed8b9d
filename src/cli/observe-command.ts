// `nodemesh dashboard | top | tap | stat`: the control plane's dashboard for terminals and scripts. Each finds
// the dashboard by --url, else by the lab (--lab, default "lab": the address `lab up` printed), and reads its
// API: `dashboard` checks it answers and prints where; `stat` prints golden signals once (--json for scripts);
// `top` refreshes them; `tap FILTER` streams the requests that match.

import fs from 'node:fs';
import http from 'node:http';
import type { Command } from 'commander';
import { statePath } from '../lab/paths';
import { parseTapFilter, type TapEvent, type TapFilter } from '../telemetry/tap/tap-filter';
import { NodemeshError } from '../util/errors';

const DEFAULT_URL = 'http://127.0.0.1:15080/';

class CliError extends NodemeshError {}

/** The dashboard's base URL: --url, else the lab's (when it exists), else the control plane default. */
export function dashboardUrl(o: { url?: string; lab?: string }): string {
  if (o.url) {
    if (!/^https?:\/\/./.test(o.url)) throw new CliError('NM_CLI_BAD_URL', `--url must be http(s)://host:port, not "${o.url}"`);
    return o.url.endsWith('/') ? o.url : `${o.url}/`;
  }
  const lab = o.lab ?? 'lab';
  try {
    const st = JSON.parse(fs.readFileSync(statePath(lab), 'utf8')) as { controlPlane?: { dashboardUrl?: string } };
    if (st.controlPlane?.dashboardUrl) return st.controlPlane.dashboardUrl;
  } catch {
    if (o.lab) throw new CliError('NM_CLI_NO_LAB', `no lab "${o.lab}" here`, { hint: 'nodemesh lab status lists it; or give --url of a control plane\'s dashboard' });
  }
  return DEFAULT_URL;
}

function getJson<T>(base: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, base), { timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          const v = JSON.parse(body) as T & { error?: { code: string; message: string } };
          if (res.statusCode !== 200) reject(new CliError(v.error?.code ?? 'NM_CLI_HTTP', v.error?.message ?? `HTTP ${res.statusCode}`));
          else resolve(v);
        } catch {
          reject(new CliError('NM_CLI_HTTP', `${base} answered ${res.statusCode} with no JSON: is it a nodemesh dashboard?`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err) => reject(new CliError('NM_CLI_UNREACHABLE', `cannot reach the dashboard at ${base}: ${err.message}`, { hint: 'is the control plane running with --dashboard-address? give --url or --lab' })));
  });
}

interface Signals {
  rps: number;
  successRate: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface Stat {
  windowS: number;
  services: ({ service: string } & Signals)[];
  workloads: { workload: string; namespace: string; inbound: Signals; outbound: Signals }[];
}

const f = {
  rps: (x: number): string => x.toFixed(x >= 100 ? 0 : 2),
  pct: (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(2)}%`),
  ms: (x: number | null): string => (x === null ? '-' : `${x.toFixed(x >= 100 ? 0 : 2)}ms`),
};

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

function statText(s: Stat): string {
  const svc = [['SERVICE', 'RPS', 'SUCCESS', 'P50', 'P95', 'P99'], ...s.services.map((x) => [x.service, f.rps(x.rps), f.pct(x.successRate), f.ms(x.p50), f.ms(x.p95), f.ms(x.p99)])];
  const wl = [['WORKLOAD', 'IN RPS', 'IN SUCCESS', 'IN P99', 'OUT RPS', 'OUT SUCCESS', 'OUT P99'], ...s.workloads.map((x) => [`${x.workload}.${x.namespace}`, f.rps(x.inbound.rps), f.pct(x.inbound.successRate), f.ms(x.inbound.p99), f.rps(x.outbound.rps), f.pct(x.outbound.successRate), f.ms(x.outbound.p99)])];
  const empty = s.services.length === 0 ? `\n(no HTTP requests in the last ${s.windowS} s)` : '';
  return `${table(svc)}${empty}\n\n${table(wl)}\n`;
}

function windowS(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 5 || n > 600) throw new CliError('NM_CLI_BAD_WINDOW', `--window must be 5 to 600 seconds, not "${v}"`);
  return n;
}

export function tapLine(e: TapEvent): string {
  const t = new Date(e.time).toISOString().slice(11, 23);
  const side = e.reporter === 'source' ? 'src' : 'dst';
  return `${t} ${side} ${e.sourceWorkload}.${e.sourceNamespace} -> ${e.destinationWorkload}.${e.destinationNamespace} ${e.method} ${e.authority}${e.path} ${e.status}${e.grpcStatus ? `/grpc ${e.grpcStatus}` : ''} flags=${e.flags} ${e.latencyMs.toFixed(2)}ms route=${e.route ?? '-'} endpoint=${e.endpoint ?? '-'}${e.mtls ? ' mtls' : ''}${e.traceId && e.traceKept ? ` trace=${e.traceId}` : ''}`;
}

/** Streams the tap: resolves when `count` events arrived, `durationS` passed, or the stream ended. */
export function streamTap(base: string, filter: TapFilter, o: { count?: number; durationS?: number; onEvent: (e: TapEvent) => void; onDropped?: (n: number) => void }): Promise<number> {
  const q = new URLSearchParams();
  if (filter.namespace) q.set('namespace', filter.namespace);
  if (filter.workload) q.set('workload', filter.workload);
  if (filter.pathPrefix) q.set('path', filter.pathPrefix);
  if (filter.status) q.set('status', filter.status);
  if (filter.reporter) q.set('reporter', filter.reporter);
  return new Promise((resolve, reject) => {
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    const req = http.get(new URL(`api/tap?${q}`, base), { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          const e = (JSON.parse(body || '{}') as { error?: { code: string; message: string } }).error;
          reject(new CliError(e?.code ?? 'NM_CLI_HTTP', e?.message ?? `HTTP ${res.statusCode}`));
        });
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev === 'requests' && data) {
            for (const e of JSON.parse(data) as TapEvent[]) {
              if (o.count !== undefined && seen >= o.count) break;
              seen++;
              o.onEvent(e);
            }
            if (o.count !== undefined && seen >= o.count) req.destroy();
          } else if (ev === 'dropped' && data) o.onDropped?.(Number(data));
        }
      });
      res.on('close', () => {
        if (timer) clearTimeout(timer);
        resolve(seen);
      });
    });
    req.on('error', (err) => {
      if (timer) clearTimeout(timer);
      if (req.destroyed && (o.count !== undefined || o.durationS !== undefined)) resolve(seen);
      else reject(new CliError('NM_CLI_UNREACHABLE', `cannot reach the dashboard at ${base}: ${err.message}`));
    });
    if (o.durationS !== undefined) timer = setTimeout(() => req.destroy(), o.durationS * 1000);
  });
}

function fail(err: unknown): void {
  const e = err as NodemeshError;
  process.stderr.write(`error ${e.code ?? ''}: ${e.message}\n`);
  process.exitCode = e.code === 'NM_TAP_BAD_FILTER' || e.code === 'NM_CLI_BAD_WINDOW' || e.code === 'NM_CLI_BAD_URL' ? 2 : 1;
}

export function registerObserveCommands(program: Command): void {
  const where = (c: Command): Command => c.option('--url <url>', `the control plane's dashboard (default: the lab's, else ${DEFAULT_URL})`).option('--lab <name>', 'the lab whose dashboard to use (default: lab)');

  where(program.command('dashboard').description("the mesh dashboard, served by the control plane: checks it answers and prints where to open it")).action(async (o: { url?: string; lab?: string }) => {
    try {
      const base = dashboardUrl(o);
      const a = await getJson<{ agents: unknown[] }>(base, 'api/agents');
      process.stdout.write(`nodemesh dashboard: ${base}  (${a.agents.length} agent(s) reporting)\n`);
    } catch (err) {
      fail(err);
    }
  });

  where(program.command('stat').description('golden signals per service and workload over a window (from the agents, no Prometheus needed)'))
    .option('--window <seconds>', 'window', '60')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { url?: string; lab?: string; window: string; json: boolean }) => {
      try {
        const s = await getJson<Stat>(dashboardUrl(o), `api/stat?window=${windowS(o.window)}`);
        process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : statText(s));
      } catch (err) {
        fail(err);
      }
    });

  where(program.command('top').description('services by request rate, refreshed live (Ctrl-C to quit)'))
    .option('--window <seconds>', 'window', '30')
    .option('--interval <seconds>', 'refresh period', '2')
    .option('--once', 'print once and exit', false)
    .action(async (o: { url?: string; lab?: string; window: string; interval: string; once: boolean }) => {
      try {
        const base = dashboardUrl(o);
        const w = windowS(o.window);
        for (;;) {
          const s = await getJson<Stat>(base, `api/stat?window=${w}`);
          const text = `nodemesh top: ${base} · last ${s.windowS} s · ${new Date().toLocaleTimeString()}\n\n${statText(s)}`;
          process.stdout.write(o.once || !process.stdout.isTTY ? text : `\x1b[H\x1b[2J${text}`);
          if (o.once) return;
          await new Promise((r) => setTimeout(r, Math.max(0.5, Number(o.interval) || 2) * 1000));
        }
      } catch (err) {
        fail(err);
      }
    });

  where(program.command('tap').description('stream requests matching FILTER: namespace=NS workload=NAME path=/PREFIX status=2xx|3xx|4xx|5xx|error reporter=source|destination'))
    .argument('[filter...]', 'KEY=VALUE words (none: every request)')
    .option('--json', 'one JSON object per request', false)
    .option('--count <n>', 'stop after this many requests')
    .option('--duration <seconds>', 'stop after this long')
    .action(async (words: string[], o: { url?: string; lab?: string; json: boolean; count?: string; duration?: string }) => {
      try {
        const filter = parseTapFilter(words);
        const base = dashboardUrl(o);
        await streamTap(base, filter, {
          count: o.count !== undefined ? Number(o.count) : undefined,
          durationS: o.duration !== undefined ? Number(o.duration) : undefined,
          onEvent: (e) => process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : `${tapLine(e)}\n`),
          onDropped: (n) => process.stderr.write(`(${n} matching requests not shown: over the agents' tap rate cap)\n`),
        });
      } catch (err) {
        fail(err);
      }
    });
}
