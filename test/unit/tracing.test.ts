// Unit: trace context parsing and writing (W3C, B3 single and multi; malformed input ignored), sampling
// decisions and overrides, the OTLP encoding read back, the export queue's bounds and drop counters, the
// embedded trace store's bounds and order, and the tap filter's parsing and matching.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { TraceStore } from '../../src/controlplane/observe/trace-store';
import { parseTapFilter, tapMatches, validateTapFilter, type TapEvent } from '../../src/telemetry/tap/tap-filter';
import { TapHub } from '../../src/telemetry/tap/tap-hub';
import { createLogger } from '../../src/telemetry/logger';
import { decodeExportRequest, encodeExportRequest } from '../../src/telemetry/tracing/otlp-proto';
import { addSamplingOverride, DEFAULT_SAMPLING, Sampler } from '../../src/telemetry/tracing/sampling';
import { SpanKind, type SpanRecord } from '../../src/telemetry/tracing/span';
import { SpanQueue, SpanQueueMetrics, type SpanExporter } from '../../src/telemetry/tracing/span-queue';
import { extractContext, IdSource, injectContext, parseTraceparent } from '../../src/telemetry/tracing/trace-context';
import { parseOtlpEndpoint } from '../../src/telemetry/tracing/tracing-config';

const TID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SID = '00f067aa0ba902b7';

function span(over: Partial<SpanRecord> = {}): SpanRecord {
  return {
    traceId: TID,
    spanId: SID,
    parentSpanId: '',
    traceState: null,
    name: 'GET web',
    kind: SpanKind.CLIENT,
    startMs: 1_765_000_000_123.456,
    endMs: 1_765_000_000_125.789,
    attributes: [['http.request.method', 'GET'], ['http.response.status_code', 200], ['http.request.header.x-request-id', ['abc']], ['x.ok', true], ['x.ratio', 0.5]],
    status: { code: 0 },
    flags: 1,
    resource: { key: 'uid-1', attributes: [['service.name', 'client.default']] },
    ...over,
  };
}

describe('trace context', () => {
  it('parses a valid traceparent and rejects malformed ones', () => {
    assert.deepEqual(parseTraceparent(`00-${TID}-${SID}-01`), { traceId: TID, spanId: SID, sampled: true });
    assert.deepEqual(parseTraceparent(`00-${TID}-${SID}-00`), { traceId: TID, spanId: SID, sampled: false });
    for (const bad of [
      `00-${TID.toUpperCase()}-${SID}-01`,
      `00-${TID}-${SID}`,
      `ff-${TID}-${SID}-01`,
      `00-${'0'.repeat(32)}-${SID}-01`,
      `00-${TID}-${'0'.repeat(16)}-01`,
      `00-${TID}-${SID}-01-extra`,
      `0-${TID}-${SID}-01`,
      'garbage',
      '',
    ]) {
      assert.equal(parseTraceparent(bad), null, bad);
    }
    // A later version may append fields.
    assert.ok(parseTraceparent(`01-${TID}-${SID}-01-future`));
  });

  it('extracts W3C first, then B3 single, then B3 multi; repeated traceparent is malformed', () => {
    assert.equal(extractContext({ traceparent: `00-${TID}-${SID}-01`, tracestate: 'a=1', b3: `${'1'.repeat(32)}-${SID}-1` })!.format, 'w3c');
    assert.equal(extractContext({ traceparent: `00-${TID}-${SID}-01`, tracestate: 'a=1' })!.traceState, 'a=1');
    assert.equal(extractContext({ traceparent: [`00-${TID}-${SID}-01`, `00-${TID}-${SID}-01`] }), null);
    const single = extractContext({ b3: `${TID}-${SID}-d-1111111111111111` })!;
    assert.deepEqual([single.format, single.traceId, single.sampled], ['b3-single', TID, true]);
    assert.equal(extractContext({ b3: `${TID}-${SID}` })!.sampled, null, 'B3 may defer the decision');
    assert.equal(extractContext({ b3: '1' }), null, 'a decision alone is no context');
    const multi = extractContext({ 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': SID, 'x-b3-sampled': '0' })!;
    assert.deepEqual([multi.format, multi.traceId, multi.sampled], ['b3-multi', '0000000000000000a3ce929d0e0e4736', false]);
    assert.equal(extractContext({ 'x-b3-traceid': 'xyz', 'x-b3-spanid': SID }), null);
    assert.equal(extractContext({ tracestate: 'a=1' }), null);
  });

  it('writes traceparent, keeps tracestate, and rewrites B3 in the form it came', () => {
    const h: Record<string, string | string[] | undefined> = { 'x-b3-traceid': 'old', 'x-b3-parentspanid': 'old', tracestate: 'stale' };
    injectContext(h, TID, SID, true, 'v=1', 'b3-multi');
    assert.equal(h.traceparent, `00-${TID}-${SID}-01`);
    assert.equal(h.tracestate, 'v=1');
    assert.equal(h['x-b3-traceid'], TID);
    assert.equal(h['x-b3-parentspanid'], undefined);
    assert.equal(h['x-b3-sampled'], '1');
    const s: Record<string, string | string[] | undefined> = { tracestate: 'stale' };
    injectContext(s, TID, SID, false, null, 'b3-single');
    assert.equal(s.b3, `${TID}-${SID}-0`);
    assert.equal(s.tracestate, undefined);
  });

  it('draws distinct, non-zero ids', () => {
    const ids = new IdSource();
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = ids.traceId();
      const s = ids.spanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      seen.add(t);
    }
    assert.equal(seen.size, 1000);
  });
});

describe('sampling', () => {
  it('honours the parent, then route, namespace, default', () => {
    let cfg = addSamplingOverride(DEFAULT_SAMPLING, 'namespace:payments=100');
    cfg = addSamplingOverride(cfg, 'route:payments/checkout/rule-0=0');
    const s = new Sampler({ ...cfg, defaultPercent: 0 }, () => 0.5);
    assert.equal(s.sample(true, null, 'other'), true);
    assert.equal(s.sample(false, null, 'payments'), false);
    assert.equal(s.sample(null, null, 'payments'), true);
    assert.equal(s.sample(null, 'payments/checkout/rule-0', 'payments'), false);
    assert.equal(s.sample(null, null, 'other'), false);
    assert.equal(new Sampler({ ...DEFAULT_SAMPLING, defaultPercent: 1 }, () => 0.009).sample(null, null, 'x'), true);
    assert.equal(new Sampler({ ...DEFAULT_SAMPLING, defaultPercent: 1 }, () => 0.011).sample(null, null, 'x'), false);
  });

  it('refuses malformed overrides and endpoints with a message that says what to write', () => {
    assert.throws(() => addSamplingOverride(DEFAULT_SAMPLING, 'payments=100'), /namespace:NAME=PERCENT/);
    assert.throws(() => addSamplingOverride(DEFAULT_SAMPLING, 'namespace:payments=200'), /not a percentage/);
    assert.throws(() => parseOtlpEndpoint('ftp://x'), /NM_TRACING_BAD_ENDPOINT|expected a URL/);
    assert.deepEqual(parseOtlpEndpoint('http://collector:4318'), { protocol: 'http/protobuf', address: 'http://collector:4318/v1/traces' });
    assert.deepEqual(parseOtlpEndpoint('grpc://jaeger:4317'), { protocol: 'grpc', address: 'jaeger:4317' });
    assert.deepEqual(parseOtlpEndpoint('unix:///run/x.sock'), { protocol: 'grpc', address: 'unix:///run/x.sock' });
    assert.deepEqual(parseOtlpEndpoint('http://tempo:4317', 'grpc'), { protocol: 'grpc', address: 'tempo:4317' });
  });
});

describe('OTLP encoding', () => {
  it('reads back what it writes: ids, times to the microsecond, attributes of every type, status, flags, resource', () => {
    const spans = [span(), span({ spanId: '1111111111111111', parentSpanId: SID, kind: SpanKind.SERVER, status: { code: 2, message: 'upstream reset' }, flags: 0, resource: { key: 'uid-2', attributes: [['service.name', 'web.default']] } })];
    const back = decodeExportRequest(encodeExportRequest(spans));
    assert.equal(back.length, 2);
    const [a, b] = [back.find((s) => s.spanId === SID)!, back.find((s) => s.spanId === '1111111111111111')!];
    assert.equal(a.traceId, TID);
    assert.ok(Math.abs(a.startMs - spans[0]!.startMs) < 0.002, `${a.startMs}`);
    assert.ok(Math.abs(a.endMs - spans[0]!.endMs) < 0.002);
    assert.deepEqual(Object.fromEntries(a.attributes), { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.request.header.x-request-id': ['abc'], 'x.ok': true, 'x.ratio': 0.5 });
    assert.equal(a.resource['service.name'], 'client.default');
    assert.equal(a.scope, 'nodemesh');
    assert.equal(a.flags, 1);
    assert.deepEqual([b.parentSpanId, b.kind, b.status.code, b.status.message, b.flags], [SID, SpanKind.SERVER, 2, 'upstream reset', 0]);
    assert.equal(b.resource['service.name'], 'web.default');
  });

  it('round-trips non-ASCII and long values, and batches larger than its first buffer', () => {
    const long = 'x'.repeat(300);
    const many = Array.from({ length: 600 }, (_, i) => span({ spanId: (i + 1).toString(16).padStart(16, '0'), attributes: [['k', 'héllo wörld ✓'], ['long', long], ['n', i]] }));
    const back = decodeExportRequest(encodeExportRequest(many));
    assert.equal(back.length, 600);
    assert.deepEqual(Object.fromEntries(back[599]!.attributes), { k: 'héllo wörld ✓', long, n: 599 });
  });

  it('refuses bytes that are not a request', () => {
    assert.throws(() => decodeExportRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff])));
  });
});

describe('export queue', () => {
  const log = createLogger({ level: 'silent' });

  it('drops past its bound, counts export failures, and backs off', async () => {
    const registry = new Registry();
    let calls = 0;
    const failing: SpanExporter = {
      describe: 'test',
      export: async () => {
        calls++;
        throw new Error('refused');
      },
      close: () => undefined,
    };
    const q = new SpanQueue(failing, new SpanQueueMetrics(registry), log, { maxQueue: 10, batchSize: 5, intervalMs: 10, backoffMs: 10_000 });
    for (let i = 0; i < 15; i++) q.record(span());
    await new Promise((r) => setTimeout(r, 50));
    const text = await registry.metrics();
    assert.match(text, /nodemesh_tracing_spans_dropped_total\{reason="queue_full"\} 5/);
    assert.match(text, /nodemesh_tracing_spans_dropped_total\{reason="export_failed"\} 5/);
    assert.equal(calls, 1, 'no second export while backing off');
    assert.equal(q.size, 5);
    await q.close(10);
  });

  it('exports in batches and counts what the collector took', async () => {
    const registry = new Registry();
    const got: number[] = [];
    const ok: SpanExporter = { describe: 'test', export: async (p) => void got.push(decodeExportRequest(p).length), close: () => undefined };
    const q = new SpanQueue(ok, new SpanQueueMetrics(registry), log, { batchSize: 4, intervalMs: 10 });
    for (let i = 0; i < 10; i++) q.record(span());
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got, [4, 4, 2]);
    assert.match(await registry.metrics(), /nodemesh_tracing_spans_exported_total 10/);
    await q.close(10);
  });
});

describe('embedded trace store', () => {
  it('keeps the last N traces within its span bounds, failed first', () => {
    const store = new TraceStore({ maxTraces: 3, maxSpansPerTrace: 2, maxSpans: 100 });
    const rx = (traceId: string, failed = false, startMs = 1000) =>
      decodeExportRequest(encodeExportRequest([span({ traceId, startMs, endMs: startMs + 1, status: { code: failed ? 2 : 0 } })]));
    store.add(rx('1'.repeat(32), false, 1));
    store.add(rx('2'.repeat(32), true, 2));
    store.add(rx('3'.repeat(32), false, 3));
    store.add(rx('4'.repeat(32), false, 4));
    assert.equal(store.get('1'.repeat(32)), null, 'the oldest went first');
    assert.deepEqual(store.list().map((t) => t.traceId[0]), ['2', '4', '3']);
    for (let i = 0; i < 3; i++) store.add(rx('4'.repeat(32)));
    assert.equal(store.get('4'.repeat(32))!.spans.length, 2);
    assert.equal(store.get('4'.repeat(32))!.droppedSpans, 2);
  });

  it('failed traces outlive successful ones while they hold at most half the store', () => {
    const store = new TraceStore({ maxTraces: 4, maxSpansPerTrace: 2, maxSpans: 100 });
    const rx = (n: number, failed: boolean) => decodeExportRequest(encodeExportRequest([span({ traceId: String(n).padStart(32, '0'), startMs: n, endMs: n + 1, status: { code: failed ? 2 : 0 } })]));
    store.add(rx(1, true));
    store.add(rx(2, true));
    store.add(rx(3, true));
    for (let n = 10; n < 20; n++) store.add(rx(n, false)); // a busy stretch of successes
    const kept = store.list().map((t) => [Number(t.traceId), t.failed]);
    assert.deepEqual(kept, [[3, true], [2, true], [19, false], [18, false]], 'the two newest failures stay (half of 4), the rest are the newest successes');
  });
});

describe('tap filter', () => {
  const ev = (over: Partial<TapEvent> = {}): TapEvent => ({
    time: 0,
    node: 'n',
    reporter: 'source',
    sourceWorkload: 'client',
    sourceNamespace: 'default',
    destinationWorkload: 'web',
    destinationNamespace: 'shop',
    destinationService: 'web.shop.svc.cluster.local',
    method: 'GET',
    authority: 'web',
    path: '/api/x',
    status: 200,
    grpcStatus: null,
    flags: '-',
    route: null,
    cluster: null,
    endpoint: null,
    latencyMs: 1,
    mtls: true,
    requestId: 'r',
    traceId: null,
    traceKept: false,
    ...over,
  });

  it('parses KEY=VALUE words and refuses what it does not know, saying what to write', () => {
    assert.deepEqual(parseTapFilter(['namespace=shop', 'path=/api', 'status=5xx']), { namespace: 'shop', pathPrefix: '/api', status: '5xx' });
    assert.deepEqual(parseTapFilter(['workload=web,reporter=source']), { workload: 'web', reporter: 'source' });
    assert.throws(() => parseTapFilter(['nmespace=shop']), (e: Error & { code?: string }) => e.code === 'NM_TAP_BAD_FILTER' && /unknown key "nmespace"/.test(e.message) && /namespace=NS/.test(e.message));
    assert.throws(() => parseTapFilter(['status=6xx']), /not one of/);
    assert.throws(() => parseTapFilter(['path=api']), /must start with '\/'/);
    assert.throws(() => parseTapFilter(['namespace=Shop_1']), /not a namespace name/);
    assert.throws(() => parseTapFilter(['shop']), /not KEY=VALUE/);
    assert.throws(() => validateTapFilter({ namespace: 3 }), /expected a string/);
  });

  it('matches either side by namespace and workload, the path prefix, the status class', () => {
    assert.ok(tapMatches({ namespace: 'shop' }, ev()));
    assert.ok(tapMatches({ namespace: 'default', workload: 'client' }, ev()));
    assert.ok(!tapMatches({ namespace: 'shop', workload: 'client' }, ev()), 'namespace and workload on the same side');
    assert.ok(tapMatches({ pathPrefix: '/api' }, ev()));
    assert.ok(!tapMatches({ pathPrefix: '/apix' }, ev()));
    assert.ok(tapMatches({ status: '2xx' }, ev()));
    assert.ok(!tapMatches({ status: 'error' }, ev()));
    assert.ok(tapMatches({ status: 'error' }, ev({ status: 404, flags: 'NR' })));
    assert.ok(!tapMatches({ reporter: 'destination' }, ev()));
  });

  it('the hub rate-caps and counts what it drops', async () => {
    const hub = new TapHub({ maxPerSecond: 3, intervalMs: 10 });
    const got: { n: number; dropped: number }[] = [];
    hub.onDeliver((events, dropped) => got.push({ n: events.length, dropped }));
    hub.offer(ev());
    assert.equal(got.length, 0);
    hub.subscribe([{ namespace: 'shop' }]);
    for (let i = 0; i < 5; i++) hub.offer(ev());
    hub.offer(ev({ destinationNamespace: 'x' }));
    await new Promise((r) => setTimeout(r, 40));
    hub.close();
    assert.deepEqual(got, [{ n: 3, dropped: 2 }]);
  });
});
