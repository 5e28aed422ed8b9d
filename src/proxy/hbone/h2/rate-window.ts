// Counts events in one-second windows against a limit: how a session tells a flood from a busy honest peer.

/** `hit()` returns false once more than `perSecond` events fell in the current second. */
export class RateWindow {
  private start = 0;
  private count = 0;

  constructor(readonly perSecond: number) {}

  hit(now: number = performance.now()): boolean {
    if (now - this.start > 1000) {
      this.start = now;
      this.count = 0;
    }
    return ++this.count <= this.perSecond;
  }
}
