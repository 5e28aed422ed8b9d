// What HTTP/2 sessions count against their peers: resets, floods, timeouts, memory held back. One sink per server or client pool.

/** What ended a session with GOAWAY(ENHANCE_YOUR_CALM); the label of nodemesh_hbone_*_h2_floods_total. */
export type FloodKind = 'resets' | 'idle_frames' | 'ping' | 'settings' | 'header_block' | 'control_backlog';

export const FLOOD_KINDS: readonly FloodKind[] = ['resets', 'idle_frames', 'ping', 'settings', 'header_block', 'control_backlog'];

export interface H2Counters {
  /** RST_STREAM frames the peers sent us. */
  resetsReceived: number;
  /** RST_STREAM frames we sent because the peer broke a rule (stream errors, refused streams): "made you reset". */
  resetsProvoked: number;
  /** Sessions ended for a flood, by kind. */
  floods: Record<FloodKind, number>;
  /** Sessions ended because the peer never acknowledged our SETTINGS. */
  settingsTimeouts: number;
  /** Sessions ended by us with a connection error (GOAWAY with an error code), floods and timeouts included. */
  connectionErrors: number;
  /** Times connection-level credit was held back because a session or its peer held too many unread bytes. */
  creditHeldBack: number;
}

export function newH2Counters(): H2Counters {
  return {
    resetsReceived: 0,
    resetsProvoked: 0,
    floods: { resets: 0, idle_frames: 0, ping: 0, settings: 0, header_block: 0, control_backlog: 0 },
    settingsTimeouts: 0,
    connectionErrors: 0,
    creditHeldBack: 0,
  };
}

/** Adds `b` into `a` (for totals over several sinks). */
export function addH2Counters(a: H2Counters, b: H2Counters): H2Counters {
  a.resetsReceived += b.resetsReceived;
  a.resetsProvoked += b.resetsProvoked;
  for (const k of FLOOD_KINDS) a.floods[k] += b.floods[k];
  a.settingsTimeouts += b.settingsTimeouts;
  a.connectionErrors += b.connectionErrors;
  a.creditHeldBack += b.creditHeldBack;
  return a;
}
