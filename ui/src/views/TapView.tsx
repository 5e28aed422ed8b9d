// Live tap: requests matching a filter (namespace, workload, path prefix, status class, reporter) as they
// happen, newest first, each with its route, endpoint, flags, latency and a link to its trace.
import { useEffect, useRef, useState } from 'react';
import type { TapEvent } from '../api';
import { ms, time } from '../format';

const KEYS = ['namespace', 'workload', 'path', 'status', 'reporter'] as const;
const MAX_ROWS = 500;

export function TapView({ initial }: { initial: URLSearchParams }) {
  const [form, setForm] = useState<Record<string, string>>(() => Object.fromEntries(KEYS.map((k) => [k, initial.get(k) ?? ''])));
  const [active, setActive] = useState<string | null>(null);
  const [rows, setRows] = useState<TapEvent[]>([]);
  const [dropped, setDropped] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const es = useRef<EventSource | null>(null);

  const stop = (): void => {
    es.current?.close();
    es.current = null;
    setActive(null);
  };

  const start = async (): Promise<void> => {
    stop();
    setError(null);
    const q = new URLSearchParams(Object.entries(form).filter(([, v]) => v.trim() !== ''));
    // An invalid filter is answered 400 with what to fix; EventSource would only say "error".
    const probe = await fetch(`api/tap?${q}`, { headers: { accept: 'text/event-stream' } });
    if (!probe.ok) {
      const body = (await probe.json().catch(() => ({}))) as { error?: { message: string } };
      setError(body.error?.message ?? `HTTP ${probe.status}`);
      return;
    }
    void probe.body?.cancel();
    setRows([]);
    setDropped(0);
    const src = new EventSource(`api/tap?${q}`);
    src.addEventListener('requests', (ev) => {
      const events = JSON.parse((ev as MessageEvent<string>).data) as TapEvent[];
      setRows((r) => [...events.reverse(), ...r].slice(0, MAX_ROWS));
    });
    src.addEventListener('dropped', (ev) => setDropped((d) => d + Number((ev as MessageEvent<string>).data)));
    src.onerror = () => setError('the tap stream was interrupted; reconnecting…');
    src.onopen = () => setError(null);
    es.current = src;
    setActive(q.toString() || 'all requests');
    window.history.replaceState(null, '', `#/tap?${q}`);
  };

  useEffect(() => () => es.current?.close(), []);

  return (
    <section>
      <form
        className="tap-form"
        onSubmit={(e) => {
          e.preventDefault();
          void start();
        }}
      >
        {KEYS.map((k) => (
          <label key={k}>
            {k}
            <input
              name={k}
              value={form[k]}
              placeholder={k === 'path' ? '/prefix' : k === 'status' ? '2xx…5xx, error' : k === 'reporter' ? 'source|destination' : ''}
              onChange={(e) => setForm({ ...form, [k]: e.target.value })}
              data-testid={`tap-${k}`}
            />
          </label>
        ))}
        <button type="submit" data-testid="tap-start">
          {active ? 'Restart' : 'Start'}
        </button>
        {active && (
          <button type="button" onClick={stop}>
            Stop
          </button>
        )}
      </form>
      {error && (
        <p className="error" data-testid="tap-error">
          {error}
        </p>
      )}
      {active && (
        <p className="muted">
          tapping {active} · {rows.length} shown{dropped > 0 ? ` · ${dropped} not shown (over the agents' rate cap, or this page was slow)` : ''}
        </p>
      )}
      <table data-testid="tap-rows" className="tap">
        <thead>
          <tr>
            <th>time</th>
            <th>from → to</th>
            <th>request</th>
            <th>status</th>
            <th>flags</th>
            <th>route</th>
            <th>endpoint</th>
            <th>latency</th>
            <th>trace</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.requestId}-${r.reporter}-${r.time}`} data-path={r.path} data-status={r.status} data-reporter={r.reporter}>
              <td>{time(r.time)}</td>
              <td>
                {r.sourceWorkload}.{r.sourceNamespace} → {r.destinationWorkload}.{r.destinationNamespace} <span className="muted">({r.reporter === 'source' ? 'client side' : 'server side'}{r.mtls ? ', mTLS' : ''})</span>
              </td>
              <td className="mono">
                {r.method} {r.authority}
                {r.path}
              </td>
              <td className={r.status >= 500 || r.status === 0 ? 'bad' : r.status >= 400 ? 'warn' : 'ok'}>
                {r.status}
                {r.grpcStatus ? ` / grpc ${r.grpcStatus}` : ''}
              </td>
              <td>{r.flags}</td>
              <td>{r.route ?? '–'}</td>
              <td className="mono">{r.endpoint ?? '–'}</td>
              <td>{ms(r.latencyMs)}</td>
              <td>{r.traceId && r.traceKept ? <a href={`#/traces/${r.traceId}`}>trace</a> : <span className="muted">not kept</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
