// Golden signals per service (rate, success rate, p50/p95/p99) over the window, and for one service: its
// last minutes, the routes attached with their weights, its endpoints with health and outlier state, the
// workloads that serve it, and (with a Prometheus configured) its history.
import { useEffect, useState } from 'react';
import { get, usePoll, type ServiceView } from '../api';
import { health, ms, pct, rps, time } from '../format';
import { Sparkline } from './Sparkline';

function History({ service }: { service: string }) {
  const [data, setData] = useState<{ series: Record<string, [number, number][]> } | null>(null);
  const [note, setNote] = useState<string>('loading…');
  useEffect(() => {
    get<{ series: Record<string, [number, number][]> }>(`api/history?service=${encodeURIComponent(service)}&range=3600`).then(setData, (e: Error) => setNote(e.message));
  }, [service]);
  if (!data) return <p className="muted">History: {note}</p>;
  return (
    <div className="cards">
      {(['rps', 'successRate', 'p99'] as const).map((k) => (
        <div className="card" key={k}>
          <div className="muted">{k === 'rps' ? 'requests/s' : k === 'successRate' ? 'success' : 'p99'} · last hour (Prometheus)</div>
          <Sparkline points={(data.series[k] ?? []).map(([, v]) => (Number.isFinite(v) ? v : null))} label={`${k} history`} />
        </div>
      ))}
    </div>
  );
}

function Detail({ s, prometheus }: { s: ServiceView; prometheus: boolean }) {
  return (
    <section className="detail" data-testid="service-detail">
      <h2>{s.service}</h2>
      <div className="cards">
        <div className="card">
          <div className="muted">requests/s</div>
          <div className="big">{rps(s.signals.rps)}</div>
          <Sparkline points={s.history.map((h) => h.rps)} label="rate" />
        </div>
        <div className="card">
          <div className="muted">success</div>
          <div className={`big ${health(s.signals.successRate)}`}>{pct(s.signals.successRate)}</div>
          <Sparkline points={s.history.map((h) => h.successRate)} label="success rate" />
        </div>
        <div className="card">
          <div className="muted">p50 / p95 / p99</div>
          <div className="big">
            {ms(s.signals.p50)} / {ms(s.signals.p95)} / {ms(s.signals.p99)}
          </div>
          <Sparkline points={s.history.map((h) => h.p99)} label="p99" />
        </div>
      </div>
      {s.history.length > 0 && <p className="muted">last {Math.round((s.history.length * 15) / 60)} min from the agents' reports, from {time(s.history[0]!.time)}</p>}
      {prometheus && <History service={s.service} />}
      <h3>Routes</h3>
      {s.routes.length === 0 ? (
        <p className="muted">No HTTPRoute or GRPCRoute attached: requests go to the service's own endpoints.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>route</th>
              <th>rule</th>
              <th>matches</th>
              <th>backends (weight)</th>
            </tr>
          </thead>
          <tbody>
            {s.routes.flatMap((r) =>
              r.rules.map((rule, i) => (
                <tr key={`${r.namespace}/${r.name}/${i}`}>
                  <td>
                    {r.kind} {r.namespace}/{r.name}
                  </td>
                  <td>{i}</td>
                  <td className="mono">{rule.matches.join(' or ') || 'all requests'}</td>
                  <td>{rule.backends.map((b) => `${b.name}${b.port ? `:${b.port}` : ''} (${b.weight})`).join(', ')}</td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      )}
      <h3>Endpoints</h3>
      <table>
        <thead>
          <tr>
            <th>address</th>
            <th>pod</th>
            <th>health</th>
            <th>in flight</th>
            <th>consecutive 5xx</th>
            <th>ejections</th>
            <th>seen by</th>
          </tr>
        </thead>
        <tbody>
          {s.endpoints.map((e) => (
            <tr key={e.address}>
              <td className="mono">{e.address}</td>
              <td>{e.pod || '–'}</td>
              <td className={e.ejected ? 'bad' : 'ok'}>{e.ejected ? 'ejected (outlier)' : 'healthy'}</td>
              <td>{e.active}</td>
              <td>{e.consecutive5xx}</td>
              <td>{e.ejections}</td>
              <td>{e.seenBy.join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Serving workloads</h3>
      <table>
        <tbody>
          {s.workloads.map((w) => (
            <tr key={`${w.workload}.${w.namespace}`}>
              <td>
                {w.workload}.{w.namespace}
              </td>
              <td>{rps(w.signals.rps)} rps</td>
              <td className={health(w.signals.successRate)}>{pct(w.signals.successRate)}</td>
              <td>p99 {ms(w.signals.p99)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function ServicesView({ windowS, selected }: { windowS: number; selected: string }) {
  const { data, error } = usePoll<{ services: ServiceView[] }>(`api/services?window=${windowS}&history=1`, 3000);
  const cfg = usePoll<{ prometheus: string | null }>('api/config', 60_000);
  if (!data) return <p className="muted">{error ?? 'loading…'}</p>;
  const sel = data.services.find((s) => s.service === selected || s.service.startsWith(`${selected}.svc.`)) ?? null;
  return (
    <section className="split">
      <table className="list" data-testid="services">
        <thead>
          <tr>
            <th>service</th>
            <th>rps</th>
            <th>success</th>
            <th>p50</th>
            <th>p95</th>
            <th>p99</th>
          </tr>
        </thead>
        <tbody>
          {data.services.map((s) => (
            <tr key={s.service} className={sel?.service === s.service ? 'selected' : ''} onClick={() => (window.location.hash = `#/services/${encodeURIComponent(s.service)}`)} data-service={s.service}>
              <td>
                {s.name}.{s.namespace}
              </td>
              <td>{rps(s.signals.rps)}</td>
              <td className={health(s.signals.successRate)}>{pct(s.signals.successRate)}</td>
              <td>{ms(s.signals.p50)}</td>
              <td>{ms(s.signals.p95)}</td>
              <td>{ms(s.signals.p99)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data.services.length === 0 && <p className="muted">No HTTP traffic in the last {windowS} s.</p>}
      {sel ? <Detail s={sel} prometheus={cfg.data?.prometheus != null} /> : data.services.length > 0 && <p className="muted">Pick a service for its history, routes and endpoints.</p>}
    </section>
  );
}
