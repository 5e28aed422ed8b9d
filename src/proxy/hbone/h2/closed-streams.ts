// How recently closed streams ended, in bounded memory: RFC 9113 §5.1 answers a frame on a closed stream by how it closed.

/** How a stream closed; what a late frame on it means follows from this (see H2Session.onClosedStream). */
export const Closure = {
  /** Both END_STREAMs went through: a further DATA or HEADERS from the peer is a connection error. */
  ENDED: 1,
  /** The peer reset it: a further DATA or HEADERS is a stream error STREAM_CLOSED. */
  RESET_BY_PEER: 2,
  /** We reset it: the peer may have frames in flight, which are ignored. */
  RESET_BY_US: 3,
} as const;
export type ClosureKind = (typeof Closure)[keyof typeof Closure];

/**
 * The last `capacity` closures of a session. Older ones fall out: a frame for such a stream is judged by the
 * "id at or below the highest seen" rule alone (H2Session), so memory stays fixed however many streams a
 * long-lived session carries.
 */
export class ClosedStreams {
  private readonly ids: Int32Array;
  private readonly kinds = new Map<number, ClosureKind>();
  private next = 0;

  constructor(readonly capacity = 1024) {
    this.ids = new Int32Array(capacity);
  }

  add(id: number, kind: ClosureKind): void {
    if (this.kinds.has(id)) {
      this.kinds.set(id, kind);
      return;
    }
    const evicted = this.ids[this.next]!;
    if (evicted !== 0) this.kinds.delete(evicted);
    this.ids[this.next] = id;
    this.next = (this.next + 1) % this.capacity;
    this.kinds.set(id, kind);
  }

  get(id: number): ClosureKind | undefined {
    return this.kinds.get(id);
  }

  get size(): number {
    return this.kinds.size;
  }
}
