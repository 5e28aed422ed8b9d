// HBONE sessions as Prometheus metrics, read at scrape time from the client pool's and each pod server's stats.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { HboneClientPoolStats } from '../proxy/hbone/client-pool';
import { FLOOD_KINDS, type H2Counters } from '../proxy/hbone/h2/h2-counters';
import type { HboneServerStats } from '../proxy/hbone/server';

export interface PodHboneStats {
  pod: string;
  namespace: string;
  /** One entry per listener (IPv4, IPv6). */
  servers: HboneServerStats[];
}

type ClientTotal = 'sessionsOpened' | 'dialFailures' | 'connectRefused' | 'silentPeers';
type ServerTotal = 'sessionsAccepted' | 'handshakeFailures' | 'handshakeTimeouts' | 'clientsRefused' | 'silentPeers';
type H2Total = 'settingsTimeouts' | 'connectionErrors' | 'creditHeldBack';

/** HTTP/2 counters as series: resets by who caused them, floods by kind, and the plain totals. */
function h2Series(c: H2Counters): Array<{ metric: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ metric: string; labels: Record<string, string>; value: number }> = [
    { metric: 'resets', labels: { by: 'peer' }, value: c.resetsReceived },
    { metric: 'resets', labels: { by: 'provoked' }, value: c.resetsProvoked },
  ];
  for (const kind of FLOOD_KINDS) out.push({ metric: 'floods', labels: { kind }, value: c.floods[kind] });
  const totals: Array<[string, H2Total]> = [
    ['settings_timeouts', 'settingsTimeouts'],
    ['connection_errors', 'connectionErrors'],
    ['credit_held_back', 'creditHeldBack'],
  ];
  for (const [metric, pick] of totals) out.push({ metric, labels: {}, value: c[pick] });
  return out;
}

const H2_HELP: Record<string, [string, string[]]> = {
  resets: ['HTTP/2 streams reset: by="peer" the peer\'s RST_STREAM, by="provoked" ours for its faults (made-you-reset)', ['by']],
  floods: ['HTTP/2 sessions ended with GOAWAY(ENHANCE_YOUR_CALM) for a flood, by kind', ['kind']],
  settings_timeouts: ['HTTP/2 sessions ended because the peer never acknowledged our SETTINGS', []],
  connection_errors: ['HTTP/2 sessions we ended with a connection error (GOAWAY with an error code)', []],
  credit_held_back: ['Times connection credit was held back because a session or its peer held too many unread bytes', []],
};

export function registerHboneMetrics(registry: Registry, client: () => HboneClientPoolStats | null, servers: () => PodHboneStats[]): void {
  const registers = [registry];
  const clientTotal = (name: string, help: string, pick: ClientTotal): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const s = client();
        if (s) this.inc(s[pick]);
      },
    });
  };
  const clientGauge = (name: string, help: string, pick: 'sessions' | 'activeStreams'): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(client()?.[pick] ?? 0);
      },
    });
  };
  new Gauge({
    name: 'nodemesh_hbone_client_h2_engine',
    help: 'The HTTP/2 implementation HBONE runs on (--hbone-h2): 1 for the one in use',
    labelNames: ['engine'],
    registers,
    collect() {
      this.reset();
      const s = client();
      if (s) this.set({ engine: s.engine }, 1);
    },
  });
  clientGauge('nodemesh_hbone_client_sessions', 'HBONE sessions (mTLS HTTP/2 to peer agents) in the client pool', 'sessions');
  clientGauge('nodemesh_hbone_client_streams', 'HBONE tunnels open through the client pool', 'activeStreams');
  clientTotal('nodemesh_hbone_client_sessions_opened_total', 'HBONE sessions dialled and set up', 'sessionsOpened');
  clientTotal('nodemesh_hbone_client_dial_failures_total', 'HBONE dials that failed (TCP, TLS, identity, HTTP/2 setup)', 'dialFailures');
  clientTotal('nodemesh_hbone_client_connect_refused_total', 'CONNECTs the peer answered with an error status', 'connectRefused');
  clientTotal('nodemesh_hbone_client_silent_peers_total', 'HBONE sessions ended because the peer agent answered nothing, not even a PING', 'silentPeers');
  for (const [metric, [help, labelNames]] of Object.entries(H2_HELP)) {
    new Counter({
      name: `nodemesh_hbone_client_h2_${metric}_total`,
      help: `${help} (client sessions)`,
      labelNames,
      registers,
      collect() {
        this.reset();
        const s = client();
        if (s) for (const x of h2Series(s.h2)) if (x.metric === metric) this.inc(x.labels, x.value);
      },
    });
    new Counter({
      name: `nodemesh_hbone_server_h2_${metric}_total`,
      help: `${help} (sessions on the pod's 15008)`,
      labelNames: ['pod', 'namespace', ...labelNames],
      registers,
      collect() {
        this.reset();
        for (const p of servers()) {
          for (const server of p.servers) {
            for (const x of h2Series(server.h2)) if (x.metric === metric) this.inc({ pod: p.pod, namespace: p.namespace, ...x.labels }, x.value);
          }
        }
      },
    });
  }

  const serverTotal = (name: string, help: string, pick: ServerTotal): void => {
    new Counter({
      name,
      help,
      labelNames: ['pod', 'namespace'],
      registers,
      collect() {
        this.reset();
        for (const p of servers()) this.inc({ pod: p.pod, namespace: p.namespace }, p.servers.reduce((n, s) => n + s[pick], 0));
      },
    });
  };
  const serverGauge = (name: string, help: string, pick: 'sessions' | 'handshakesInProgress'): void => {
    new Gauge({
      name,
      help,
      labelNames: ['pod', 'namespace'],
      registers,
      collect() {
        this.reset();
        for (const p of servers()) this.set({ pod: p.pod, namespace: p.namespace }, p.servers.reduce((n, s) => n + s[pick], 0));
      },
    });
  };
  serverGauge('nodemesh_hbone_server_sessions', "HBONE sessions open on each pod's 15008 listeners", 'sessions');
  serverGauge('nodemesh_hbone_server_handshakes_in_progress', "TLS handshakes under way on each pod's 15008 listeners", 'handshakesInProgress');
  serverTotal('nodemesh_hbone_server_sessions_accepted_total', "HBONE sessions accepted on the pod's 15008 (client verified)", 'sessionsAccepted');
  serverTotal('nodemesh_hbone_server_handshake_failures_total', "TLS handshakes that failed on the pod's 15008", 'handshakeFailures');
  serverTotal('nodemesh_hbone_server_handshake_timeouts_total', "TLS handshakes on the pod's 15008 that did not finish within the handshake timeout (also in handshake_failures)", 'handshakeTimeouts');
  new Counter({
    name: 'nodemesh_hbone_server_handshakes_rejected_total',
    help: "Connections to the pod's 15008 reset at accept: a bound on TLS handshakes in progress (per source address, per pod, in all) was reached",
    labelNames: ['pod', 'namespace', 'bound'],
    registers,
    collect() {
      this.reset();
      for (const p of servers()) {
        for (const bound of ['source', 'pod', 'total'] as const) {
          this.inc({ pod: p.pod, namespace: p.namespace, bound }, p.servers.reduce((n, s) => n + s.handshakesRejected[bound], 0));
        }
      }
    },
  });
  serverTotal('nodemesh_hbone_server_clients_refused_total', 'Clients refused after the handshake (untrusted, expired, no single SPIFFE ID)', 'clientsRefused');
  serverTotal('nodemesh_hbone_server_silent_peers_total', 'HBONE sessions ended with their tunnels because the client answered nothing, not even a PING', 'silentPeers');
}
