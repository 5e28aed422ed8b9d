#!/usr/bin/env node
// What tracing costs the L7 path (bench/README.md "Tracing"). Two parts:
//
//   node bench/micro/tracing-cost.js layers [--n 200000] [--otel DIR]
//     The tracing layers alone on the request seam, in a loop: ns per request with tracing off, on and not
//     sampled, 1 %, 100 % (span built and queued), the tap subscribed (matching or not); the OTLP encoding
//     per span (done off the request path, on the same thread); and, with --otel pointing at a directory
//     where @opentelemetry/sdk-trace-base and @opentelemetry/otlp-transformer are installed, the same span
//     through the OpenTelemetry SDK (start, 30 attributes, end into a BatchSpanProcessor) and its protobuf
//     serializer, plus what loading those packages adds to a process's memory.
//
//   node bench/micro/tracing-cost.js pair [--rate 500] [--secs 10] [--reps 3] [--only off,1,100,down,slow]
//     Two agents' data paths in one process (the in-process pair of the integration tests: real HBONE mTLS
//     on loopback), the application and the load generator (bench/loadgen.js, open loop) in their own
//     processes, an OTLP/HTTP sink in this one. Agents on CPU 1, everything else on CPU 0. Per setting,
//     interleaved per repetition: the agents' CPU per 1000 requests and the latency percentiles; added =
//     setting - off in the same repetition. `down`: 100 % sampled to a closed port; `slow`: 100 % to a sink
//     that answers after 5 s; `tap100`: 1 % and every request tapped, as 100 tap clients make it.
'use strict';

const { fork, spawn, execFileSync } = require('node:child_process');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const dist = (p) => path.join(ROOT, 'dist', p);

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r3 = (x) => Math.round(x * 1000) / 1000;
/** CPU time of this process (user + system), in ns: a shared, loaded machine inflates wall time, not this. */
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

// ---- layers: the seam in a loop --------------------------------------------------------------------------

function fakeConn(direction) {
  const pod = { uid: 'uid-client', name: 'client-7d9f', namespace: 'default', serviceAccount: 'client', ips: ['10.0.0.2'], labels: { app: 'client', version: 'v1' }, annotations: {}, workloadName: 'client' };
  const labels = {
    reporter: direction === 'outbound' ? 'source' : 'destination',
    source_workload: 'client',
    source_workload_namespace: 'default',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    source_app: 'client',
    source_version: 'v1',
    destination_workload: 'unknown',
    destination_workload_namespace: 'unknown',
    destination_principal: 'unknown',
    destination_app: 'unknown',
    destination_version: 'unknown',
    destination_service: 'web.default.svc.cluster.local',
    destination_service_name: 'web',
    destination_service_namespace: 'default',
    connection_security_policy: 'unknown',
  };
  return { direction, pod, sockets: null, src: { ip: '10.0.0.2', port: 40000 }, dst: { ip: '10.96.0.10', port: 80 }, service: null, protocol: 'http', principal: labels.source_principal, labels };
}

async function layers() {
  const n = Number(arg('n', '200000'));
  const { Registry } = require('prom-client');
  const { tracingLayers } = require(dist('src/proxy/http/layers/tracing.js'));
  const { Tracer } = require(dist('src/telemetry/tracing/tracer.js'));
  const { TapHub } = require(dist('src/telemetry/tap/tap-hub.js'));
  const { compose } = require(dist('src/proxy/http/request.js'));
  const { newRequestContext } = require(dist('src/proxy/http/exchange.js'));
  const { DEFAULT_SAMPLING } = require(dist('src/telemetry/tracing/sampling.js'));
  const { encodeExportRequest } = require(dist('src/telemetry/tracing/otlp-proto.js'));

  const conn = fakeConn('outbound');
  const route = { name: 'default/web/rule-0', source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' }, matches: [], action: { kind: 'forward', backends: [] } };
  const cluster = { name: 'outbound|80||web.default.svc.cluster.local', host: 'web.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 1000, protocol: 'http' };
  const endpoint = { ip: '10.0.1.5', port: 8080, pod: 'web-v1-5c8f', namespace: 'default', serviceAccount: 'web', inMesh: true };
  const answer = { status: 200, headers: {}, body: null };
  const result = { status: 200, requestBytes: 0, responseBytes: 1024, grpcStatus: null, downstreamReset: false, durationMs: 1.234 };
  // What the layers between them do, reduced to setting what they decide.
  const router = (next) => (req, rc) => {
    rc.route = route;
    rc.cluster = cluster;
    return next(req, rc);
  };
  const terminal = async (_req, rc) => {
    rc.endpoint = endpoint;
    rc.target = { ip: endpoint.ip, port: endpoint.port, via: 'hbone', peerId: 'spiffe://cluster.local/ns/default/sa/web' };
    rc.attempts = 1;
    return answer;
  };
  let queued = 0;
  const sink = { record: () => void queued++ };

  const setups = [
    ['no tracing layers (baseline)', null, null],
    ['tracing on, 0 % (ids made, header written)', { ...DEFAULT_SAMPLING, defaultPercent: 0 }, null],
    ['tracing on, 1 %', { ...DEFAULT_SAMPLING, defaultPercent: 1 }, null],
    ['tracing on, 100 % (span built, queued)', { ...DEFAULT_SAMPLING, defaultPercent: 100 }, null],
    ['1 % + tap subscribed, no match', { ...DEFAULT_SAMPLING, defaultPercent: 1 }, [{ namespace: 'other' }]],
    ['1 % + tap subscribed, every request matches', { ...DEFAULT_SAMPLING, defaultPercent: 1 }, [{ namespace: 'default' }]],
  ];
  const rows = [];
  for (const [name, sampling, tapFilters] of setups) {
    const tracer = sampling ? new Tracer({ sampling, sink, registry: new Registry(), node: 'node-a' }) : null;
    const tap = tapFilters ? new TapHub({ maxPerSecond: 1e9, maxBuffered: 1e9, intervalMs: 1e9 }) : null;
    if (tap) {
      tap.subscribe(tapFilters);
      tap.onDeliver(() => undefined);
    }
    const t = tracingLayers({ tracer, tap, node: 'node-a' });
    const handler = compose(sampling || tap ? [t.observe, router, t.propagate] : [router], terminal);
    const one = async () => {
      const headers = { host: 'web', 'user-agent': 'bench', 'x-request-id': 'fixed-request-id' };
      const rc = newRequestContext(conn, headers);
      await handler({ method: 'GET', path: '/api/items?id=3', authority: 'web.default.svc.cluster.local', scheme: 'http', headers, body: null, version: 'http1' }, rc);
      for (const f of rc.done) f(result);
    };
    for (let i = 0; i < 20000; i++) await one();
    const best = [];
    for (let rep = 0; rep < 5; rep++) {
      const c0 = cpuNs();
      for (let i = 0; i < n; i++) await one();
      best.push((cpuNs() - c0) / n);
      if (tap) tap.flush();
    }
    rows.push({ name, ns: Math.round(median(best)) });
    if (tap) tap.close();
  }
  const base = rows[0].ns;
  console.log(`\nCPU per request on the seam (median of 5 x ${n}; includes newRequestContext and the compose calls):`);
  for (const r of rows) console.log(`  ${r.name.padEnd(48)} ${String(r.ns).padStart(6)} ns   (+${r.ns - base} ns)`);

  // Encoding: the spans of one request at each agent, as the export queue encodes them in batches of 512.
  const tracer = new Tracer({ sampling: { ...DEFAULT_SAMPLING, defaultPercent: 100 }, sink: { record: (s) => spans.push(s) }, registry: new Registry(), node: 'node-a' });
  const spans = [];
  const t = tracingLayers({ tracer, tap: null, node: 'node-a' });
  const handler = compose([t.observe, router, t.propagate], terminal);
  for (let i = 0; i < 512; i++) {
    const headers = { host: 'web', 'user-agent': 'bench' };
    const rc = newRequestContext(conn, headers);
    await handler({ method: 'GET', path: '/api/items?id=3', authority: 'web.default.svc.cluster.local', scheme: 'http', headers, body: null, version: 'http1' }, rc);
    for (const f of rc.done) f(result);
  }
  const enc = [];
  let bytes = 0;
  for (let rep = 0; rep < 20; rep++) {
    const c0 = cpuNs();
    bytes = encodeExportRequest(spans).length;
    enc.push((cpuNs() - c0) / spans.length);
  }
  console.log(`  OTLP protobuf encoding (batches of 512)        ${String(Math.round(median(enc))).padStart(6)} ns per span, ${Math.round(bytes / spans.length)} bytes per span`);

  const otelDir = arg('otel');
  if (otelDir) await otel(otelDir, spans[0], n);
}

async function otel(dir, sample, n) {
  const req = (m) => require(require.resolve(m, { paths: [dir] }));
  // Memory: a fresh process with and without the packages loaded.
  const rssOf = (code) => Number(execFileSync(process.execPath, ['--expose-gc', '-e', `${code}; global.gc(); process.stdout.write(String(process.memoryUsage().rss))`], { cwd: dir }).toString());
  const loadAll = "require('@opentelemetry/api'); require('@opentelemetry/sdk-trace-base'); require('@opentelemetry/otlp-transformer')";
  const rss0 = median([0, 1, 2].map(() => rssOf('')));
  const rss1 = median([0, 1, 2].map(() => rssOf(loadAll)));
  const { BasicTracerProvider, BatchSpanProcessor } = req('@opentelemetry/sdk-trace-base');
  const { ProtobufTraceSerializer } = req('@opentelemetry/otlp-transformer');
  const api = req('@opentelemetry/api');
  let exported = 0;
  const exporter = {
    export: (spans, cb) => {
      exported += spans.length;
      cb({ code: 0 });
    },
    shutdown: async () => undefined,
  };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 1000 })] });
  const tracer = provider.getTracer('nodemesh', '0.1.0');
  const attrs = Object.fromEntries(sample.attributes);
  const one = () => {
    const span = tracer.startSpan(sample.name, { kind: api.SpanKind.CLIENT, attributes: attrs });
    span.setStatus({ code: api.SpanStatusCode.UNSET });
    span.end();
  };
  for (let i = 0; i < 20000; i++) one();
  const best = [];
  for (let rep = 0; rep < 5; rep++) {
    const c0 = cpuNs();
    for (let i = 0; i < n; i++) one();
    best.push((cpuNs() - c0) / n);
    await new Promise((r) => setImmediate(r));
  }
  await provider.forceFlush();
  // Serializer: the SDK's ReadableSpans of one batch.
  const batch = [];
  const collect = { onStart: () => undefined, onEnd: (s) => batch.length < 512 && batch.push(s), forceFlush: async () => undefined, shutdown: async () => undefined };
  const p2 = new BasicTracerProvider({ spanProcessors: [collect] });
  const t2 = p2.getTracer('nodemesh', '0.1.0');
  for (let i = 0; i < 512; i++) t2.startSpan(sample.name, { kind: api.SpanKind.CLIENT, attributes: attrs }).end();
  const enc = [];
  let bytes = 0;
  for (let rep = 0; rep < 20; rep++) {
    const c0 = cpuNs();
    bytes = ProtobufTraceSerializer.serializeRequest(batch).length;
    enc.push((cpuNs() - c0) / batch.length);
  }
  console.log(`\nOpenTelemetry JS SDK (sdk-trace-base ${req('@opentelemetry/sdk-trace-base/package.json').version}), same span (${sample.attributes.length} attributes):`);
  console.log(`  start + setStatus + end into a BatchSpanProcessor ${String(Math.round(median(best))).padStart(6)} ns per span (exported ${exported})`);
  console.log(`  ProtobufTraceSerializer (batches of 512)          ${String(Math.round(median(enc))).padStart(6)} ns per span, ${Math.round(bytes / batch.length)} bytes per span`);
  console.log(`  loading sdk-trace-base + otlp-transformer + api:  +${Math.round(((rss1 - rss0) / 1048576) * 10) / 10} MB RSS (a fresh process, after a full GC)`);
}

// ---- pair: two agents in a child process ------------------------------------------------------------------

async function agentsProcess() {
  // argv: agents APP_PORT SETTING SINK_URL
  const [, , , appPort, setting, sinkUrl] = process.argv;
  const { startPair, pod } = require(dist('test/helpers/l7-pair.js'));
  const { Tracer } = require(dist('src/telemetry/tracing/tracer.js'));
  const { createSpanQueue } = require(dist('src/telemetry/tracing/tracing-config.js'));
  const { DEFAULT_SAMPLING } = require(dist('src/telemetry/tracing/sampling.js'));
  const { createLogger } = require(dist('src/telemetry/logger.js'));
  const { TapHub } = require(dist('src/telemetry/tap/tap-hub.js'));
  const { telemetryService } = require(dist('src/telemetry/mesh-report/telemetry-proto.js'));
  const { toWireEvent } = require(dist('src/telemetry/mesh-report/report-client.js'));
  const log = createLogger({ level: 'silent' });
  let tapBytes = 0;
  const tapHub = () => {
    const hub = new TapHub();
    const serialize = telemetryService().Connect.requestSerialize;
    hub.onDeliver((events, dropped) => (tapBytes += serialize({ tap: { events: events.map(toWireEvent), dropped } }).length));
    hub.subscribe([{}]);
    return hub;
  };
  const base = 10 + Math.floor(Math.random() * 200);
  const client = pod('client', `127.${base}.0.2`, 'client', { app: 'client' });
  const web = pod('web', `127.${base}.1.2`, 'web', { app: 'web' });
  // tap100: what 100 dashboard or CLI tap clients with distinct filters cost an agent: past 32 distinct
  // filters the control plane subscribes every agent to all requests (rate-capped), so each request is
  // matched, turned into an event and encoded for the telemetry stream, as the agent does; tracing at 1 %.
  const tapAll = setting === 'tap100';
  const percent = setting === 'off' ? null : setting === '1' || tapAll ? 1 : 100;
  const queues = [];
  const pair = await startPair(client, [web], {
    extra: (node, registry) => {
      const tap = tapAll ? tapHub() : null;
      if (percent === null) return {};
      const q = createSpanQueue({ sampling: DEFAULT_SAMPLING, endpoint: { protocol: 'http/protobuf', address: sinkUrl } }, registry, log);
      queues.push(q);
      return { tracer: new Tracer({ sampling: { ...DEFAULT_SAMPLING, defaultPercent: percent }, sink: q, registry, node: `node-${node}` }), tap };
    },
  });
  const cluster = 'outbound|80||web.default.svc.cluster.local';
  // The endpoint is in the mesh: over HBONE to node B's pod (its 15008), which forwards to the app.
  pair.configure({
    clusters: [{ name: cluster, host: 'web.default.svc.cluster.local', lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'http' }],
    endpoints: new Map([[cluster, [{ ip: web.ip, port: Number(appPort), pod: 'web', namespace: 'default', serviceAccount: 'web', inMesh: true }]]]),
    vips: [{ vip: '10.96.0.10', port: 80, cluster, protocol: 'http', routeTable: 'rt' }],
    routes: [{ name: 'rt', routes: [{ name: 'default/web/rule-0', source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' }, matches: [], action: { kind: 'forward', backends: [{ cluster, weight: 1 }] } }] }],
  });
  pair.setDestination({ ip: '10.96.0.10', port: 80 });
  process.send({ port: pair.clientPort, appIp: web.ip });
  process.on('message', async (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      const text = (await pair.registryA.metrics()) + (await pair.registryB.metrics());
      const count = (re) => [...text.matchAll(re)].reduce((s, x) => s + Number(x[1]), 0);
      process.send({ cpuUs: u.user + u.system, rss: process.memoryUsage().rss, exported: count(/nodemesh_tracing_spans_exported_total (\d+)/g), dropped: count(/nodemesh_tracing_spans_dropped_total\{[^}]*\} (\d+)/g) });
    } else if (m === 'exit') {
      await pair.close();
      for (const q of queues) await q.close(100);
      process.exit(0);
    }
  });
}

function pinned(cpu, argv) {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return ['taskset', ['-c', String(cpu), ...argv]];
  } catch {
    return [argv[0], argv.slice(1)];
  }
}

async function pair() {
  const rate = Number(arg('rate', '500'));
  const secs = Number(arg('secs', '10'));
  const reps = Number(arg('reps', '3'));
  const only = arg('only', 'off,1,100,down,slow,tap100').split(',');
  // The OTLP sink: counts spans; `slow` answers after 5 s.
  let slow = false;
  let received = 0;
  const sink = http.createServer((req, res) => {
    req.on('data', (c) => (received += c.length));
    req.on('end', () => setTimeout(() => res.writeHead(200).end(), slow ? 5000 : 0));
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  const sinkPort = sink.address().port;
  const closedPort = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const appPort = 20000 + Math.floor(Math.random() * 20000);
  const [appCmd, appArgs] = pinned(0, [process.execPath, path.join(ROOT, 'bench', 'server.js'), '--port', String(appPort)]);
  const app = spawn(appCmd, appArgs, { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const results = {};
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const setting of only) {
        slow = setting === 'slow';
        const url = setting === 'down' ? `http://127.0.0.1:${closedPort}/v1/traces` : `http://127.0.0.1:${sinkPort}/v1/traces`;
        const percent = setting === 'down' || setting === 'slow' ? '100' : setting;
        if (!['off', '1', '100', 'tap100'].includes(percent)) throw new Error(`unknown setting ${setting}`);
        // fork through taskset: `taskset -c 1 node tracing-cost.js agents …`, the IPC channel inherited.
        const [cmd] = pinned(1, [process.execPath]);
        const child = fork(__filename, ['agents', String(appPort), percent, url], {
          execPath: cmd === 'taskset' ? 'taskset' : process.execPath,
          execArgv: cmd === 'taskset' ? ['-c', '1', process.execPath] : [],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const ready = await new Promise((resolve, reject) => {
          child.once('message', resolve);
          child.once('exit', (c) => reject(new Error(`agents exited ${c}`)));
        });
        const ask = () => new Promise((resolve) => {
          child.once('message', resolve);
          child.send('cpu');
        });
        // warm-up outside the measured window
        await runLoad(ready.port, rate, 2, 0);
        const before = await ask();
        const load = await runLoad(ready.port, rate, secs, 0);
        const after = await ask();
        child.send('exit');
        await new Promise((r) => child.once('exit', r));
        const cpuPer1k = ((after.cpuUs - before.cpuUs) / 1e6) / (load.ok / 1000);
        (results[setting] ??= []).push({ rep, cpuPer1k, p50: load.latency_ms.p50, p99: load.latency_ms.p99, ok: load.ok, errors: load.errors, exported: after.exported - before.exported, dropped: after.dropped - before.dropped, rssMb: after.rss / 1048576 });
        console.error(`rep ${rep} ${setting}: ${r3(cpuPer1k)} CPU-s/1k, p50 ${load.latency_ms.p50} p99 ${load.latency_ms.p99} ms, ok ${load.ok} errors ${load.errors}, spans exported ${after.exported - before.exported} dropped ${after.dropped - before.dropped}`);
      }
    }
  } finally {
    app.kill();
    sink.close();
  }
  console.log(`\nL7 through two agents (in-process pair, HBONE mTLS on loopback), ${rate} rps, ${secs} s, ${reps} reps; medians; added = setting - off, paired per rep`);
  console.log('setting | CPU s per 1k req (both agents) | p50 / p99 ms | added p50 / p99 ms | spans exported / dropped per rep');
  const off = results.off ?? [];
  for (const [setting, rs] of Object.entries(results)) {
    const addP50 = rs.map((r) => r.p50 - (off.find((o) => o.rep === r.rep)?.p50 ?? NaN));
    const addP99 = rs.map((r) => r.p99 - (off.find((o) => o.rep === r.rep)?.p99 ?? NaN));
    console.log(
      `${setting} | ${r3(median(rs.map((r) => r.cpuPer1k)))} | ${r3(median(rs.map((r) => r.p50)))} / ${r3(median(rs.map((r) => r.p99)))} | ${setting === 'off' ? '-' : `${r3(median(addP50))} / ${r3(median(addP99))}`} | ${median(rs.map((r) => r.exported))} / ${median(rs.map((r) => r.dropped))}`,
    );
  }
}

function runLoad(port, rate, secs, warm) {
  const [cmd, args] = pinned(0, [process.execPath, path.join(ROOT, 'bench', 'loadgen.js'), '--target', `127.0.0.1:${port}`, '--rate', String(rate), '--conns', '4', '--duration', String(secs), '--warmup', String(warm)]);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.on('exit', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`loadgen: ${out} ${e}`));
      }
    });
  });
}

const mode = process.argv[2];
if (mode === 'layers') layers().catch((e) => (console.error(e), process.exit(1)));
else if (mode === 'pair') pair().catch((e) => (console.error(e), process.exit(1)));
else if (mode === 'agents') agentsProcess().catch((e) => (console.error(e), process.exit(1)));
else {
  console.error('usage: tracing-cost.js layers|pair [options] (see the header)');
  process.exit(2);
}
