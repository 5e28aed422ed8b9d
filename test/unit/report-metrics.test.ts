// The telemetry report reads only its own series from the registry: no other collector runs for it (the
// process_* collectors read /proc every report interval, which cost an idle agent most of its CPU), and the
// report built from them is the one the whole registry gave.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Gauge, Registry } from 'prom-client';
import { buildReport, REPORT_METRICS, reportMetrics } from '../../src/telemetry/mesh-report/build-report';
import { ProxyMetrics } from '../../src/telemetry/metrics';
import { RequestMetrics } from '../../src/telemetry/request-metrics';

const TCP = {
  reporter: 'source',
  source_workload: 'client',
  source_workload_namespace: 'default',
  source_principal: 'spiffe://cluster.local/ns/default/sa/client',
  destination_workload: 'server',
  destination_workload_namespace: 'default',
  destination_principal: 'spiffe://cluster.local/ns/default/sa/server',
  destination_service: 'unknown',
  connection_security_policy: 'mutual_tls',
  response_flags: '-',
};

function inputs(metrics: Awaited<ReturnType<typeof reportMetrics>>): Parameters<typeof buildReport>[0] {
  return { node: 'n', version: 't', notReadyReason: null, startedAtMs: 0, threads: 1, pods: 0, metrics, xds: null, identities: [], endpoints: [], tracing: null };
}

test('reportMetrics reads only the series a report uses, and the report is the same as from the whole registry', async () => {
  const registry = new Registry();
  const proxy = new ProxyMetrics(registry);
  new RequestMetrics(registry);
  proxy.tcpOpened.inc(TCP);
  proxy.tcpSent.inc(TCP, 1000);
  proxy.tcpReceived.inc(TCP, 200);
  let collected = 0;
  new Gauge({
    name: 'unrelated_gauge',
    help: 'a collector the report must not run',
    registers: [registry],
    collect() {
      collected++;
      this.set(1);
    },
  });

  const own = await reportMetrics(registry);
  assert.equal(collected, 0, 'a collector outside REPORT_METRICS ran');
  for (const m of own) assert.ok(REPORT_METRICS.includes(m.name), `${m.name} is not a report series`);
  assert.deepEqual(own.map((m) => m.name).sort(), ['istio_request_duration_milliseconds', 'istio_tcp_connections_opened_total', 'istio_tcp_received_bytes_total', 'istio_tcp_sent_bytes_total']);

  const fromAll = buildReport(inputs(await registry.getMetricsAsJSON()));
  const fromOwn = buildReport(inputs(own));
  assert.deepEqual(fromOwn.tcp, fromAll.tcp);
  assert.deepEqual(fromOwn.requests, fromAll.requests);
  assert.deepEqual(fromOwn.tcp.map((t) => [t.opened, t.sent_bytes, t.received_bytes]), [[1, 1000, 200]]);
});
