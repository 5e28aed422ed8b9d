// Live tap on the control plane: who is watching with which filter, the filter set every agent is told to
// match (distinct filters; past a bound, one match-all filter, and the matching happens here), and the fan-out
// of tapped requests to the watchers whose filter they match. A slow watcher loses events (counted for it),
// never slows the agents or the other watchers.

import { tapFilterKey, tapMatches, type TapEvent, type TapFilter } from '../../telemetry/tap/tap-filter';

export interface TapWatcher {
  filter: TapFilter;
  /** Delivers a batch; false when the watcher cannot take more now (its events are dropped until it drains). */
  send(events: TapEvent[], dropped: number): boolean;
}

/** Distinct filters sent to agents at most; with more watchers' filters, agents send everything (rate-capped). */
const MAX_AGENT_FILTERS = 32;

export class TapBroker {
  private readonly watchers = new Set<TapWatcher & { lost: number }>();
  private agentFilters: TapFilter[] = [];
  private readonly listeners = new Set<(filters: TapFilter[]) => void>();
  /** Events agents dropped over their rate caps, since start (for /metrics and the watchers' notices). */
  agentDropped = 0;

  /** Called with the filter set every agent must match, now and on every change. */
  onFilters(fn: (filters: TapFilter[]) => void): () => void {
    this.listeners.add(fn);
    fn(this.agentFilters);
    return () => this.listeners.delete(fn);
  }

  get filters(): TapFilter[] {
    return this.agentFilters;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  watch(w: TapWatcher): () => void {
    const entry = Object.assign(w, { lost: 0 });
    this.watchers.add(entry);
    this.recompute();
    return () => {
      this.watchers.delete(entry);
      this.recompute();
    };
  }

  private recompute(): void {
    const distinct = new Map<string, TapFilter>();
    for (const w of this.watchers) distinct.set(tapFilterKey(w.filter), w.filter);
    const next = distinct.size > MAX_AGENT_FILTERS ? [{}] : [...distinct.values()];
    const key = (fs: TapFilter[]): string => fs.map(tapFilterKey).sort().join('|');
    if (key(next) === key(this.agentFilters)) return;
    this.agentFilters = next;
    for (const fn of this.listeners) fn(next);
  }

  /** A batch from one agent: each watcher gets the events its own filter matches. */
  publish(events: TapEvent[], dropped: number): void {
    this.agentDropped += dropped;
    for (const w of this.watchers) {
      const mine = events.filter((e) => tapMatches(w.filter, e));
      if (mine.length === 0 && dropped === 0) continue;
      if (!w.send(mine, dropped + w.lost)) w.lost += mine.length;
      else w.lost = 0;
    }
  }
}
