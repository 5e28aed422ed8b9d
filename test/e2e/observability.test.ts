// e2e (root): observability of a real two-node lab with live HTTP traffic through both agents.
// - Prometheus (Debian's) scrapes both agents and the control plane; every endpoint passes `promtool check
//   metrics`; PromQL's request count, rate and p99 for the service agree with what the test's traffic did.
// - `nodemesh tap` sees the requests its filter selects and no others; an invalid filter is a clear error.
// - One request through two agents is one trace in the control plane's store: client span and server span.
// - The dashboard in headless Chromium (Debian's, driven by playwright-core): the graph shows the expected
//   edges with mTLS, a tap filter shows only matching requests, a trace opens as a waterfall; a screenshot of
//   each view is kept in NODEMESH_ARTIFACTS (default: a temp dir, printed).

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { prometheusGet, startLabPrometheus, inFabric } from '../../src/lab/prometheus';
import { readState, type LabState } from '../../src/lab/state';
import { down, execInPod, isRoot, uniqueLabName, upFromYaml } from '../helpers/lab';
import { waitFor } from '../helpers/wait';
import { DURATION_BUCKETS } from '../../src/telemetry/request-metrics';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CHROMIUM = '/usr/bin/chromium';
const LAB = uniqueLabName('obs');
const SVC = 'web.default.svc.cluster.local';
const why = !isRoot() ? 'needs root (lab namespaces)' : !fs.existsSync('/usr/bin/prometheus') ? 'needs Debian prometheus (scripts/dev.sh setup)' : !fs.existsSync(CHROMIUM) ? 'needs Debian chromium (scripts/dev.sh setup)' : false;

const MANIFEST = `
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { nodeName: node-a, serviceAccountName: client, containers: [{ name: main, command: ["sleep", "infinity"] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-b, namespace: default, labels: { app: web, version: v1 } }
spec: { nodeName: node-b, serviceAccountName: web, containers: [{ name: http, command: ["nodemesh", "sample", "http", "--port", "8080", "--name", "web", "--version", "v1"] }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080, targetPort: 8080, appProtocol: http }]
`;

function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Summary {
  total: number;
  ok: number;
  rps: number;
  latencyMs: { p50: number; p99: number };
}

async function traffic(state: LabState, vip: string, query: string, args: string[]): Promise<Summary> {
  const r = await execInPod(state.lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${vip}:8080${query}`, '--summary', '-q', ...args], 180_000);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  const s = (JSON.parse(last) as { summary: Summary }).summary;
  return s;
}

async function promQuery(q: string): Promise<number | null> {
  const r = (await prometheusGet(LAB, `/api/v1/query?query=${encodeURIComponent(q)}`)) as { status: string; data: { result: { value: [number, string] }[] } };
  assert.equal(r.status, 'success', q);
  const v = r.data.result[0]?.value[1];
  return v === undefined ? null : Number(v);
}

describe('observability of a lab', { skip: why }, () => {
  let state: LabState;
  let vip = '';
  let steady: Summary;
  const artifacts = process.env.NODEMESH_ARTIFACTS ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-artifacts-'));

  before(async () => {
    state = await upFromYaml(LAB, MANIFEST);
    await startLabPrometheus(LAB, { scrapeIntervalS: 2, rulesFiles: [path.join(ROOT, 'deploy', 'monitoring', 'nodemesh-agent-rules.yaml')] });
    state = readState(LAB);
    const st = JSON.parse((await cli(['lab', 'status', '--name', LAB, '--json'])).stdout) as { services: { host: string; vip: string }[] };
    vip = st.services.find((s) => s.host === SVC)!.vip;
    // Steady traffic at a known pace: one request at a time, each held 30 ms by the server (Istio bucket 25-50 ms).
    steady = await traffic(state, vip, '/steady?delay=30', ['--duration', '30']);
    assert.equal(steady.ok, steady.total, 'every request answered 200');
    process.stderr.write(`artifacts: ${artifacts}\n`);
  });

  after(async () => {
    await down(LAB);
  });

  it('every endpoint passes promtool check metrics, and Prometheus scrapes both agents and the control plane', async () => {
    const targets = [...state.nodes.map((n) => `${n.fabricIP}:15020`), '127.0.0.1:15014'];
    for (const t of targets) {
      const text = await inFabric(state, ['curl', '-sS', '--max-time', '5', `http://${t}/metrics`]);
      assert.match(text, /^process_cpu_seconds_total /m, `${t} serves process_* metrics`);
      assert.match(text, /^nodejs_heap_size_used_bytes/m, `${t} serves nodejs_* metrics`);
      const check = (() => {
        try {
          execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
          return '';
        } catch (e) {
          return `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
        }
      })();
      // promtool's lint wants seconds; Istio's own metric is in milliseconds, and existing dashboards query that
      // name, so it stays: the one finding allowed, and only for that metric.
      const findings = check.split('\n').filter((l) => l.trim() !== '' && l.trim() !== 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"');
      assert.deepEqual(findings, [], `promtool check metrics on ${t}`);
    }
    await waitFor('all three targets up', async () => (await promQuery('sum(up{job=~"nodemesh-agent|nodemesh-controlplane"})')) === 3, 20_000);
    assert.equal(await promQuery('sum(nodemesh_agent_ready)'), 2);
    assert.equal(await promQuery('count(nodemesh_build_info)'), 2);
  });

  it("PromQL's request count, rate and p99 for the service agree with the traffic", async () => {
    const sel = `reporter="source",destination_service="${SVC}"`;
    // Counters are exact: every request of the steady run, counted once by the client's agent.
    await waitFor('the last scrape has every request', async () => (await promQuery(`sum(istio_requests_total{${sel},response_code="200"})`)) === steady.total, 20_000);
    // the server agent's last scrape may be older than the client agent's: wait for it too, then it is exact
    await waitFor('the server agent counted the same requests', async () => (await promQuery(`sum(istio_requests_total{reporter="destination",destination_service="${SVC}"})`)) === steady.total, 20_000);
    // Rate over the run, as the client measured it (one request at a time, so rps = 1 / latency).
    const rate = (await promQuery(`sum(increase(istio_requests_total{${sel}}[5m])) / ${steady.total / steady.rps}`))!;
    assert.ok(Math.abs(rate - steady.rps) / steady.rps < 0.25, `PromQL rate ${rate} vs client ${steady.rps} rps`);
    // p99: every request takes the server's 30 ms at least, and the agent's measure (from its first byte to
    // its last) cannot exceed the client's: in Istio's buckets, PromQL's p99 lies in the client's p99 bucket
    // or the one below it, and above 25 ms.
    const p99 = (await promQuery(`histogram_quantile(0.99, sum by (le) (increase(istio_request_duration_milliseconds_bucket{${sel}}[5m])))`))!;
    const bucket = (x: number): number => DURATION_BUCKETS.findIndex((b) => x <= b);
    assert.ok(p99 > 25, `p99 ${p99} ms is at least the server's delay`);
    assert.ok([bucket(steady.latencyMs.p99), bucket(steady.latencyMs.p99) - 1].includes(bucket(p99)), `PromQL p99 ${p99} ms vs client p99 ${steady.latencyMs.p99} ms`);
    // The dashboard's own numbers (from the agents' reports, no Prometheus) agree too.
    const stat = JSON.parse((await cli(['stat', '--lab', LAB, '--json', '--window', '600'])).stdout) as { services: { service: string; requests: number; p99: number }[] };
    const web = stat.services.find((s) => s.service === SVC)!;
    assert.ok(web.requests >= steady.total * 0.9, `stat saw ${web.requests} of ${steady.total}`);
    assert.ok([bucket(p99), bucket(p99) - 1, bucket(p99) + 1].includes(bucket(web.p99)), `stat p99 ${web.p99} vs PromQL ${p99}`);
  });

  it('nodemesh tap sees the requests its filter selects and no others; an invalid filter is a clear error', async () => {
    const bad = await cli(['tap', '--lab', LAB, 'status=7xx']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /NM_TAP_BAD_FILTER.*status "7xx" is not one of 1xx, 2xx, 3xx, 4xx, 5xx, error/);
    const badPath = await cli(['tap', '--lab', LAB, 'path=tapped']);
    assert.match(badPath.stderr, /must start with '\/'/);
    // The tap is subscribed before the traffic starts: the agents learn the filter within a report period.
    const tapping = cli(['tap', '--lab', LAB, '--json', '--duration', '25', 'path=/tapped', 'reporter=source'], 60_000);
    await new Promise((r) => setTimeout(r, 5000));
    await traffic(state, vip, '/other', ['--count', '15']);
    const tapped = await traffic(state, vip, '/tapped/x?status=503', ['--count', '12']);
    await traffic(state, vip, '/other', ['--count', '15']);
    const out = await tapping;
    const events = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { path: string; status: number; reporter: string; route: string | null; endpoint: string | null; traceId: string | null; traceKept: boolean });
    assert.equal(tapped.total, 12);
    // A 503 is retried twice by the client's agent (Istio's default policy); the tap shows each request once.
    assert.equal(events.length, 12, `tap lines: ${out.stdout}${out.stderr}`);
    for (const e of events) {
      assert.match(e.path, /^\/tapped\/x/);
      assert.equal(e.status, 503);
      assert.equal(e.reporter, 'source');
      assert.match(String(e.endpoint), /:8080$/);
      assert.ok(e.traceId && e.traceKept, 'each failed request has a kept trace');
    }
  });

  it('one request through two agents is one trace with a client and a server span', async () => {
    const r = await execInPod(state.lab, 'client', ['nodemesh', 'sample', 'client', '--url', `http://${vip}:8080/traced`, '-H', 'traceparent: 00-0123456789abcdef0123456789abcdef-00f067aa0ba902b7-01'], 60_000);
    assert.equal(r.code, 0);
    const dash = readState(LAB).controlPlane!.dashboardUrl!;
    const trace = await waitFor(
      'the trace in the embedded store',
      async () => {
        const res = await fetch(`${dash}api/traces/0123456789abcdef0123456789abcdef`);
        if (!res.ok) return null;
        const t = (await res.json()) as { spans: { kind: number; spanId: string; parentSpanId: string; resource: Record<string, string> }[] };
        return t.spans.length >= 2 ? t : null;
      },
      20_000,
    );
    const client = trace.spans.find((s) => s.kind === 3)!;
    const server = trace.spans.find((s) => s.kind === 2)!;
    assert.equal(client.parentSpanId, '00f067aa0ba902b7', 'the incoming traceparent is continued');
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(client.resource['service.name'], 'client.default');
    assert.equal(server.resource['service.name'], 'web.default');
  });

  it('the dashboard in Chromium: graph edges with mTLS, a tap filter shows only matching requests, a trace opens; screenshots kept', async () => {
    const { chromium } = await import('playwright-core');
    const dash = readState(LAB).controlPlane!.dashboardUrl!;
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1366, height: 768 },
    });
    // Traffic during the browser test: the graph and the tap are live.
    const background = traffic(state, vip, '/live', ['--duration', '40']);
    try {
      const page = await browser.newPage();
      await page.goto(`${dash}#/graph`);
      const edge = page.locator(`[data-edge="client.default->web.default"]`);
      await edge.waitFor({ timeout: 20_000 });
      assert.equal(await edge.getAttribute('data-mtls'), 'true');
      assert.equal(await edge.getAttribute('data-protocol'), 'http');
      assert.match((await edge.textContent()) ?? '', /mTLS · [\d.]+ rps · [\d.]+% · p99 /);
      await page.locator('[data-edge="web.default->web-b.default"]').waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(artifacts, 'dashboard-graph.png'), fullPage: true });

      await page.goto(`${dash}#/services/${SVC}`);
      await page.locator('[data-testid="service-detail"]').waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(artifacts, 'dashboard-services.png'), fullPage: true });
      await page.goto(`${dash}#/workloads`);
      await page.locator('[data-testid="workloads"] tbody tr').first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(artifacts, 'dashboard-workloads.png'), fullPage: true });

      // Tap: an invalid filter says what to fix; a valid one shows only matching requests.
      await page.goto(`${dash}#/tap`);
      await page.fill('[data-testid="tap-status"]', '9xx');
      await page.click('[data-testid="tap-start"]');
      await page.locator('[data-testid="tap-error"]').waitFor({ timeout: 5000 });
      assert.match((await page.textContent('[data-testid="tap-error"]')) ?? '', /not one of 1xx/);
      await page.fill('[data-testid="tap-status"]', '');
      await page.fill('[data-testid="tap-path"]', '/browser-only');
      await page.click('[data-testid="tap-start"]');
      await new Promise((r) => setTimeout(r, 4000));
      await traffic(state, vip, '/browser-only?x=1', ['--count', '5']);
      await page.locator('[data-testid="tap-rows"] tbody tr').nth(4).waitFor({ timeout: 15_000 });
      const paths = await page.locator('[data-testid="tap-rows"] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-path')));
      assert.ok(paths.length >= 5 && paths.every((p) => p?.startsWith('/browser-only')), `tap rows: ${paths.join(' ')}`);
      await page.screenshot({ path: path.join(artifacts, 'dashboard-tap.png'), fullPage: true });

      // Traces: failed first in the list; one opens (a click) as a waterfall with its client and server spans.
      await page.goto(`${dash}#/traces`);
      await page.locator('[data-testid="traces"] tbody tr').first().waitFor({ timeout: 10_000 });
      const first = page.locator('[data-testid="traces"] tbody tr').first();
      assert.match((await first.getAttribute('class')) ?? '', /failed/, 'failed traces are listed first');
      // Open a failed trace whose two agents have both exported their spans (each batches on its own clock, so
      // the newest one may still lack its client span for a moment): found through the API, opened by a click.
      const complete = await waitFor(
        'a failed trace with its client and server spans',
        async () => {
          const list = (await (await fetch(`${dash}api/traces?failed=1&limit=50`)).json()) as { traces: { traceId: string }[] };
          for (const t of list.traces) {
            const full = (await (await fetch(`${dash}api/traces/${t.traceId}`)).json()) as { spans: { kind: number }[] };
            if (full.spans.some((sp) => sp.kind === 3) && full.spans.some((sp) => sp.kind === 2)) return t.traceId;
          }
          return null;
        },
        20_000,
      );
      await page.locator(`[data-testid="traces"] tbody tr[data-trace="${complete}"]`).click();
      await page.locator('[data-testid="waterfall"] [data-span-kind="client"]').first().waitFor({ timeout: 10_000 });
      assert.ok((await page.locator('[data-testid="waterfall"] [data-span-kind="server"]').count()) >= 1);
      await page.locator('[data-testid="waterfall"] .span-name').first().click();
      await page.locator('[data-testid="waterfall"] table.attrs').first().waitFor({ timeout: 5000 });
      await page.screenshot({ path: path.join(artifacts, 'dashboard-trace.png'), fullPage: true });

      await page.goto(`${dash}#/agents`);
      await page.locator('[data-agent="node-b"]').waitFor({ timeout: 10_000 });
      assert.match((await page.textContent('[data-agent="node-a"]')) ?? '', /ready/);
      await page.screenshot({ path: path.join(artifacts, 'dashboard-agents.png'), fullPage: true });
      for (const f of ['graph', 'services', 'workloads', 'tap', 'trace', 'agents']) assert.ok(fs.statSync(path.join(artifacts, `dashboard-${f}.png`)).size > 10_000);
    } finally {
      await browser.close();
      fs.rmSync(profile, { recursive: true, force: true });
      await background;
    }
  });
});
