// What all HTTP/2 sessions from one peer may cost together: unread bytes held, and resets per second.

import { RateWindow } from './rate-window';

/**
 * Shared by every session of one peer (the server keys it by the client's SPIFFE ID), so a peer opening more
 * sessions does not multiply its allowance. Sessions add the bytes they hold for slow readers; while the sum
 * is over `maxHeld`, they stop crediting the connection window and wait for `onRelief`.
 */
export class PeerBudget {
  held = 0;
  readonly resets: RateWindow;
  private readonly waiting = new Set<() => void>();

  constructor(
    readonly maxHeld: number,
    resetsPerSecond: number,
  ) {
    this.resets = new RateWindow(resetsPerSecond);
  }

  get over(): boolean {
    return this.held > this.maxHeld;
  }

  add(n: number): void {
    this.held += n;
    if (n < 0 && this.waiting.size > 0 && !this.over) {
      const woken = [...this.waiting];
      this.waiting.clear();
      for (const fn of woken) fn();
    }
  }

  /** `fn` runs once, when the peer's held bytes fall back under the limit. */
  onRelief(fn: () => void): void {
    this.waiting.add(fn);
  }

  cancelRelief(fn: () => void): void {
    this.waiting.delete(fn);
  }
}
