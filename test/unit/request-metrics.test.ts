// Istio's request metrics: the agent's own series store must expose exactly what prom-client's Counter and
// Histogram expose for the same observations (prom-client is the oracle), through the text and JSON paths.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS, REQUEST_LABELS, RequestMetrics, type RequestLabels } from '../../src/telemetry/request-metrics';

const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

function labels(over: Partial<RequestLabels>): RequestLabels {
  const l = {} as RequestLabels;
  for (const n of REQUEST_LABELS) l[n] = 'unknown';
  return { ...l, reporter: 'source', response_code: '200', ...over };
}

/** Series as a map "name{sorted labels}" → value, whatever order the labels were printed in. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const ls = (m[2] ?? '').match(/\w+="(?:[^"\\]|\\.)*"/g) ?? [];
    out.set(`${m[1]}{${[...ls].sort().join(',')}}`, Number(m[3]));
  }
  return out;
}

function oracle(): { registry: Registry; record(l: RequestLabels, d: number, rq: number, rs: number): void } {
  const registry = new Registry();
  const labelNames = [...REQUEST_LABELS];
  const c = new Counter({ name: 'istio_requests_total', help: 'x', labelNames, registers: [registry] });
  const d = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'x', labelNames, buckets: DURATION_BUCKETS, registers: [registry] });
  const q = new Histogram({ name: 'istio_request_bytes', help: 'x', labelNames, buckets: SIZE_BUCKETS, registers: [registry] });
  const s = new Histogram({ name: 'istio_response_bytes', help: 'x', labelNames, buckets: SIZE_BUCKETS, registers: [registry] });
  return {
    registry,
    record(l, dur, rq, rs) {
      c.inc(l);
      d.observe(l, dur);
      q.observe(l, rq);
      s.observe(l, rs);
    },
  };
}

const OBSERVATIONS: [Partial<RequestLabels>, number, number, number][] = [
  [{}, 0.2, 0, 12],
  [{}, 0.5, 0, 12],
  [{}, 7.5, 10, 1000],
  [{ response_code: '503', response_flags: 'UF' }, 3600001, 1e10, 0],
  [{ reporter: 'destination', destination_workload: 'web-v1' }, 42, 5, 99],
  [{}, 1, 1, 1],
];

test('text exposition equals prom-client\'s for the same requests: counts, cumulative buckets, +Inf, sums', async () => {
  const ours = new Registry();
  const m = new RequestMetrics(ours);
  const ref = oracle();
  for (const [over, d, rq, rs] of OBSERVATIONS) {
    m.record(labels(over), d, rq, rs);
    ref.record(labels(over), d, rq, rs);
  }
  const got = parse(await ours.metrics());
  const want = parse(await ref.registry.metrics());
  assert.equal(got.size, want.size);
  assert.deepEqual([...got].sort(), [...want].sort());
  // Spot checks that would fail if the oracle were wrong in the same way.
  const ok = `istio_requests_total{${Object.entries(labels({})).map(([k, v]) => `${k}="${v}"`).sort().join(',')}}`;
  assert.equal(got.get(ok), 4);
});

test('caller keys that name the same label set share one series; the labels are built once per key', async () => {
  const reg = new Registry();
  const m = new RequestMetrics(reg);
  let built = 0;
  const make = (): RequestLabels => {
    built++;
    return labels({ destination_workload: 'web-v1' });
  };
  const a = m.recordKeyed('k1', make, 1, 0, 0);
  m.recordKeyed('k1', make, 1, 0, 0);
  const b = m.recordKeyed('k2', make, 1, 0, 0);
  assert.equal(built, 2);
  assert.equal(a, b, 'both keys return the one series\' labels');
  const counts = [...parse(await reg.metrics())].filter(([k]) => k.startsWith('istio_requests_total'));
  assert.deepEqual(counts.map(([, v]) => v), [3]);
});

test('the JSON path sums across threads as prom-client\'s aggregation does', async () => {
  const threads = [new Registry(), new Registry()];
  const refs = [oracle(), oracle()];
  threads.forEach((r, i) => {
    const m = new RequestMetrics(r);
    for (const [over, d, rq, rs] of OBSERVATIONS.slice(i)) {
      m.record(labels(over), d, rq, rs);
      refs[i]!.record(labels(over), d, rq, rs);
    }
  });
  const got = AggregatorRegistry.aggregate(await Promise.all(threads.map((r) => r.getMetricsAsJSON())));
  const want = AggregatorRegistry.aggregate(await Promise.all(refs.map((r) => r.registry.getMetricsAsJSON())));
  assert.deepEqual([...parse(await got.metrics())].sort(), [...parse(await want.metrics())].sort());
});
