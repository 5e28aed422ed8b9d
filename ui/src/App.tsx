// The dashboard: one view per tab (graph, services, workloads, live tap, traces, agents), chosen by the URL
// hash so a link (a trace from the tap, a service) opens the right view; one time window for all.
import { useEffect, useState } from 'react';
import { AgentsView } from './views/AgentsView';
import { GraphView } from './views/GraphView';
import { ServicesView } from './views/ServicesView';
import { TapView } from './views/TapView';
import { TracesView } from './views/TracesView';
import { WorkloadsView } from './views/WorkloadsView';

const TABS = [
  ['graph', 'Service graph'],
  ['services', 'Services'],
  ['workloads', 'Workloads'],
  ['tap', 'Live tap'],
  ['traces', 'Traces'],
  ['agents', 'Agents'],
] as const;

export type Tab = (typeof TABS)[number][0];

/** `#/tab/arg?query` */
export function parseHash(h: string): { tab: Tab; arg: string; query: URLSearchParams } {
  const [p = '', q = ''] = h.replace(/^#\/?/, '').split('?');
  const [tab, ...rest] = p.split('/');
  const known = TABS.some(([t]) => t === tab);
  return { tab: known ? (tab as Tab) : 'graph', arg: decodeURIComponent(rest.join('/')), query: new URLSearchParams(q) };
}

export function App() {
  const [hash, setHash] = useState(window.location.hash);
  const [windowS, setWindowS] = useState(60);
  useEffect(() => {
    const f = (): void => setHash(window.location.hash);
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  const { tab, arg, query } = parseHash(hash);
  return (
    <div className="app">
      <header>
        <span className="brand">nodemesh</span>
        <nav>
          {TABS.map(([t, label]) => (
            <a key={t} href={`#/${t}`} className={t === tab ? 'active' : ''} data-tab={t}>
              {label}
            </a>
          ))}
        </nav>
        <label className="window">
          window{' '}
          <select value={windowS} onChange={(e) => setWindowS(Number(e.target.value))} data-testid="window">
            {[30, 60, 300, 600].map((s) => (
              <option key={s} value={s}>
                {s < 60 ? `${s} s` : `${s / 60} min`}
              </option>
            ))}
          </select>
        </label>
      </header>
      <main>
        {tab === 'graph' && <GraphView windowS={windowS} />}
        {tab === 'services' && <ServicesView windowS={windowS} selected={arg} />}
        {tab === 'workloads' && <WorkloadsView windowS={windowS} />}
        {tab === 'tap' && <TapView initial={query} />}
        {tab === 'traces' && <TracesView selected={arg} />}
        {tab === 'agents' && <AgentsView />}
      </main>
    </div>
  );
}
