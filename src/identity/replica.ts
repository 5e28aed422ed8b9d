// A data-plane worker's view of the agent's identities: bundles and failures pushed from the main thread,
// which alone talks to the CA and rotates.

import type { CertBundle, IdentitySource } from './types';

interface Waiter {
  resolve: (b: CertBundle) => void;
  reject: (e: Error) => void;
}

export class IdentityReplica implements IdentitySource {
  private readonly bundles = new Map<string, CertBundle>();
  private readonly failures = new Map<string, Error>();
  private readonly waiters = new Map<string, Waiter[]>();
  /** Roots last pushed: what trustBundle() falls back to when no bundle is held. */
  private lastRoots: string[] = [];

  constructor(
    private readonly onUpdate: (id: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A (re)issued bundle for `id` and the roots that go with it. `onUpdate` hears every one, the first too: a
   * listener that waited through a failed first request starts serving on it.
   */
  update(id: string, bundle: CertBundle, roots: string[]): void {
    this.bundles.set(id, bundle);
    this.failures.delete(id);
    this.lastRoots = roots;
    for (const w of this.takeWaiters(id)) w.resolve(bundle);
    this.onUpdate(id);
  }

  /** The first issuance of `id` failed: waiters get the main thread's error. A later update clears it. */
  fail(id: string, message: string): void {
    if (this.current(id)) return;
    const err = new Error(message);
    this.failures.set(id, err);
    for (const w of this.takeWaiters(id)) w.reject(err);
  }

  /** No local pod has `id` any more. */
  forget(id: string): void {
    this.bundles.delete(id);
    this.failures.delete(id);
    for (const w of this.takeWaiters(id)) w.reject(new Error(`identity ${id} is no longer used by any pod on this node`));
  }

  /** As the main thread's provider: a valid bundle, else the known failure, else wait for the next issuance. */
  certFor(id: string): Promise<CertBundle> {
    const b = this.current(id);
    if (b) return Promise.resolve(b);
    const f = this.failures.get(id);
    if (f) return Promise.reject(f);
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(id) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(id, list);
    });
  }

  /** Null once the bundle has expired unreplaced, as on the main thread. */
  current(id: string): CertBundle | null {
    const b = this.bundles.get(id);
    return b && b.notAfter.getTime() > this.now() ? b : null;
  }

  /** The roots of every bundle held (a root rotation carries old and new), as the main thread computes them. */
  trustBundle(): string[] {
    const roots = new Set<string>();
    for (const b of this.bundles.values()) for (const r of b.rootsPem) roots.add(r);
    return roots.size > 0 ? [...roots] : [...this.lastRoots];
  }

  private takeWaiters(id: string): Waiter[] {
    const list = this.waiters.get(id) ?? [];
    this.waiters.delete(id);
    return list;
  }
}
