// What one HTTP/2 session lets its peer cost: resets, idle frames, PING and SETTINGS rates, unread bytes held.

import { ErrorCode, H2ProtocolError } from './constants';
import type { FloodKind, H2Counters } from './h2-counters';
import type { PeerBudget } from './peer-budget';
import { RateWindow } from './rate-window';

/** Per-second allowances; an honest peer stays far below each (HBONE sends a PING per 10 s idle, SETTINGS once). */
export interface FloodLimits {
  /**
   * Streams reset per second: RST_STREAM from the peer (rapid reset, CVE-2023-44487) and resets we send for its
   * faults (refused or malformed streams, flow-control and state errors: "made you reset", CVE-2025-8671),
   * counted together. Each such stream may have cost an authorization and an upstream dial.
   */
  resetsPerSecond: number;
  /** Frames that carry nothing: empty DATA without END_STREAM, PRIORITY, unknown types, frames on closed streams. */
  idleFramesPerSecond: number;
  pingsPerSecond: number;
  settingsPerSecond: number;
}

export const DEFAULT_FLOOD_LIMITS: Readonly<FloodLimits> = {
  resetsPerSecond: 1000,
  idleFramesPerSecond: 1000,
  pingsPerSecond: 100,
  settingsPerSecond: 100,
};

/** A flood: the session ends with GOAWAY(ENHANCE_YOUR_CALM), counted under `kind`. */
export class H2FloodError extends H2ProtocolError {
  constructor(
    readonly kind: FloodKind,
    message: string,
  ) {
    super(ErrorCode.ENHANCE_YOUR_CALM, 0, message);
  }
}

export class SessionGuard {
  /** Bytes this session holds for streams whose readers are paused. */
  held = 0;
  private readonly resets: RateWindow;
  private readonly idle: RateWindow;
  private readonly pings: RateWindow;
  private readonly settings: RateWindow;

  constructor(
    private readonly limits: FloodLimits,
    readonly counters: H2Counters,
    readonly peer: PeerBudget | null,
    private readonly maxHeld: number,
  ) {
    this.resets = new RateWindow(limits.resetsPerSecond);
    this.idle = new RateWindow(limits.idleFramesPerSecond);
    this.pings = new RateWindow(limits.pingsPerSecond);
    this.settings = new RateWindow(limits.settingsPerSecond);
  }

  /** The peer reset a stream. Throws H2FloodError past the reset allowance. */
  peerReset(): void {
    this.counters.resetsReceived++;
    this.countReset();
  }

  /** We are about to reset a stream for the peer's fault. Throws H2FloodError past the reset allowance. */
  provokedReset(): void {
    this.counters.resetsProvoked++;
    this.countReset();
  }

  idleFrame(what: string): void {
    if (!this.idle.hit()) throw new H2FloodError('idle_frames', `more than ${this.limits.idleFramesPerSecond} frames that carry nothing in a second (last: ${what})`);
  }

  ping(): void {
    if (!this.pings.hit()) throw new H2FloodError('ping', `more than ${this.limits.pingsPerSecond} PINGs in a second`);
  }

  settingsFrame(): void {
    if (!this.settings.hit()) throw new H2FloodError('settings', `more than ${this.limits.settingsPerSecond} SETTINGS frames in a second`);
  }

  hold(n: number): void {
    this.held += n;
    this.peer?.add(n);
  }

  /** Whether new connection-level credit must wait: this session, or all of its peer's, hold too much unread. */
  get overBudget(): boolean {
    return this.held > this.maxHeld || (this.peer !== null && this.peer.over);
  }

  private countReset(): void {
    const now = performance.now();
    const ok = this.resets.hit(now);
    if (ok && (this.peer === null || this.peer.resets.hit(now))) return;
    const whose = ok ? "all of this peer's sessions" : 'this session';
    throw new H2FloodError('resets', `more than ${this.limits.resetsPerSecond} streams reset by the peer in a second, its own resets and those its faults drew (${whose})`);
  }
}
