// Per-key request counts behind the http sample's `?fail=N`: bounded, least recently used keys go first.

/**
 * Retry tests send a fresh `x-fail-key` per scenario, so the number of keys grows with the test
 * suite, not with traffic; still, any client can send any key, so the map is capped. An evicted
 * key starts counting again from zero, as if this server had never seen it.
 */
export class FailKeys {
  private readonly counts = new Map<string, number>();

  constructor(readonly maxKeys = 10_000) {}

  /** Counts one more request carrying `key`; returns how many there have been, this one included. */
  hit(key: string): number {
    const n = (this.counts.get(key) ?? 0) + 1;
    // Map keeps insertion order: re-inserting moves the key to the young end.
    this.counts.delete(key);
    this.counts.set(key, n);
    if (this.counts.size > this.maxKeys) {
      const oldest = this.counts.keys().next();
      if (!oldest.done) this.counts.delete(oldest.value);
    }
    return n;
  }

  get size(): number {
    return this.counts.size;
  }
}
