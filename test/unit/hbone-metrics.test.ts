// HBONE metrics: read from the pool's and the pod servers' stats at scrape time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import type { HboneClientPoolStats } from '../../src/proxy/hbone/client-pool';
import type { HboneServerStats } from '../../src/proxy/hbone/server';
import { newH2Counters } from '../../src/proxy/hbone/h2/h2-counters';
import { registerHboneMetrics, type PodHboneStats } from '../../src/telemetry/hbone-metrics';

function server(over: Partial<HboneServerStats>): HboneServerStats {
  return { sessions: 0, activeStreams: 0, sessionsAccepted: 0, streamsAccepted: 0, handshakeFailures: 0, handshakeTimeouts: 0, handshakesInProgress: 0, handshakesRejected: { source: 0, pod: 0, total: 0 }, clientsRefused: 0, badRequests: 0, silentPeers: 0, h2: newH2Counters(), ...over };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('pool totals and gauges, and per-pod server figures summed over the pod\'s listeners, as of each scrape', async () => {
  const registry = new Registry();
  let pool: HboneClientPoolStats | null = null;
  let pods: PodHboneStats[] = [];
  registerHboneMetrics(registry, () => pool, () => pods);

  let text = await registry.metrics();
  assert.equal(value(text, 'nodemesh_hbone_client_sessions'), 0, 'no pool yet: zero');
  assert.equal(value(text, 'nodemesh_hbone_client_silent_peers_total'), 0, 'no pool yet: zero');

  pool = { sessions: 2, activeStreams: 5, pendingDials: 0, sessionsOpened: 7, dialFailures: 1, streamsOpened: 9, streamsReused: 4, connectRefused: 2, silentPeers: 3, engine: 'nodemesh', h2: newH2Counters(), perSession: [] };
  pods = [
    { pod: 'echo', namespace: 'default', servers: [server({ sessions: 1, sessionsAccepted: 4, clientsRefused: 1 }), server({ sessions: 2, sessionsAccepted: 1, handshakeFailures: 2, handshakeTimeouts: 1, handshakesInProgress: 3, handshakesRejected: { source: 4, pod: 1, total: 0 }, silentPeers: 1 })] },
    { pod: 'db', namespace: 'prod', servers: [server({ clientsRefused: 5 })] },
  ];
  text = await registry.metrics();
  assert.equal(value(text, 'nodemesh_hbone_client_sessions'), 2);
  assert.equal(value(text, 'nodemesh_hbone_client_streams'), 5);
  assert.equal(value(text, 'nodemesh_hbone_client_sessions_opened_total'), 7);
  assert.equal(value(text, 'nodemesh_hbone_client_dial_failures_total'), 1);
  assert.equal(value(text, 'nodemesh_hbone_client_connect_refused_total'), 2);
  assert.equal(value(text, 'nodemesh_hbone_client_silent_peers_total'), 3);
  assert.equal(value(text, 'nodemesh_hbone_server_sessions{pod="echo",namespace="default"}'), 3);
  assert.equal(value(text, 'nodemesh_hbone_server_sessions_accepted_total{pod="echo",namespace="default"}'), 5);
  assert.equal(value(text, 'nodemesh_hbone_server_handshake_failures_total{pod="echo",namespace="default"}'), 2);
  assert.equal(value(text, 'nodemesh_hbone_server_handshake_timeouts_total{pod="echo",namespace="default"}'), 1);
  assert.equal(value(text, 'nodemesh_hbone_server_handshakes_in_progress{pod="echo",namespace="default"}'), 3);
  assert.equal(value(text, 'nodemesh_hbone_server_handshakes_rejected_total{pod="echo",namespace="default",bound="source"}'), 4);
  assert.equal(value(text, 'nodemesh_hbone_server_handshakes_rejected_total{pod="echo",namespace="default",bound="pod"}'), 1);
  assert.equal(value(text, 'nodemesh_hbone_server_handshakes_rejected_total{pod="echo",namespace="default",bound="total"}'), 0);
  assert.equal(value(text, 'nodemesh_hbone_server_clients_refused_total{pod="echo",namespace="default"}'), 1);
  assert.equal(value(text, 'nodemesh_hbone_server_clients_refused_total{pod="db",namespace="prod"}'), 5);
  assert.equal(value(text, 'nodemesh_hbone_server_silent_peers_total{pod="echo",namespace="default"}'), 1);

  // Totals are read, not accumulated: a second scrape of unchanged stats gives the same values.
  assert.equal(value(await registry.metrics(), 'nodemesh_hbone_client_sessions_opened_total'), 7);
  // An unenrolled pod's series go away.
  pods = pods.slice(0, 1);
  text = await registry.metrics();
  assert.equal(value(text, 'nodemesh_hbone_server_clients_refused_total{pod="db",namespace="prod"}'), undefined);
  assert.equal(value(text, 'nodemesh_hbone_server_sessions{pod="echo",namespace="default"}'), 3);
});

test('HTTP/2 counters: resets by who caused them, floods by kind, timeouts, per pod for servers', async () => {
  const registry = new Registry();
  const h2 = newH2Counters();
  h2.resetsReceived = 4;
  h2.resetsProvoked = 9;
  h2.floods.ping = 1;
  h2.floods.resets = 2;
  h2.settingsTimeouts = 3;
  h2.connectionErrors = 7;
  h2.creditHeldBack = 5;
  const poolH2 = newH2Counters();
  poolH2.resetsProvoked = 1;
  const pool: HboneClientPoolStats = { sessions: 0, activeStreams: 0, pendingDials: 0, sessionsOpened: 0, dialFailures: 0, streamsOpened: 0, streamsReused: 0, connectRefused: 0, silentPeers: 0, engine: 'node', h2: poolH2, perSession: [] };
  registerHboneMetrics(registry, () => pool, () => [{ pod: 'echo', namespace: 'default', servers: [server({ h2 }), server({ h2 })] }]);
  const text = await registry.metrics();
  const pod = 'pod="echo",namespace="default"';
  assert.equal(value(text, `nodemesh_hbone_server_h2_resets_total{${pod},by="peer"}`), 8);
  assert.equal(value(text, `nodemesh_hbone_server_h2_resets_total{${pod},by="provoked"}`), 18);
  assert.equal(value(text, `nodemesh_hbone_server_h2_floods_total{${pod},kind="ping"}`), 2);
  assert.equal(value(text, `nodemesh_hbone_server_h2_floods_total{${pod},kind="resets"}`), 4);
  assert.equal(value(text, `nodemesh_hbone_server_h2_floods_total{${pod},kind="idle_frames"}`), 0);
  assert.equal(value(text, `nodemesh_hbone_server_h2_settings_timeouts_total{${pod}}`), 6);
  assert.equal(value(text, `nodemesh_hbone_server_h2_connection_errors_total{${pod}}`), 14);
  assert.equal(value(text, `nodemesh_hbone_server_h2_credit_held_back_total{${pod}}`), 10);
  assert.equal(value(text, 'nodemesh_hbone_client_h2_resets_total{by="provoked"}'), 1);
  assert.equal(value(text, 'nodemesh_hbone_client_h2_settings_timeouts_total'), 0);
  assert.equal(value(text, 'nodemesh_hbone_client_h2_engine{engine="node"}'), 1);
});
