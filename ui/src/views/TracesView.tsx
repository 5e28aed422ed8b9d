// Traces from the control plane's embedded store: failed first, then newest; one opens as a waterfall of its
// spans (client spans at the caller's agent, server spans at the callee's), with their attributes.
import { useState } from 'react';
import { usePoll, type Span, type TraceSummary } from '../api';
import { ms, time } from '../format';

interface TraceDetail {
  traceId: string;
  spans: Span[];
  droppedSpans: number;
  summary: TraceSummary;
}

function depthOf(spans: Span[]): Map<string, number> {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const depth = new Map<string, number>();
  const d = (s: Span, guard = 0): number => {
    if (depth.has(s.spanId)) return depth.get(s.spanId)!;
    const p = byId.get(s.parentSpanId);
    const v = p && guard < 64 ? d(p, guard + 1) + 1 : 0;
    depth.set(s.spanId, v);
    return v;
  };
  for (const s of spans) d(s);
  return depth;
}

function Waterfall({ id }: { id: string }) {
  const { data, error } = usePoll<TraceDetail>(`api/traces/${id}`, 5000);
  const [open, setOpen] = useState<string | null>(null);
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'loading…'}</p>;
  const start = Math.min(...data.spans.map((s) => s.startMs));
  const end = Math.max(...data.spans.map((s) => s.endMs));
  const total = Math.max(end - start, 0.001);
  const depth = depthOf(data.spans);
  const ordered = [...data.spans].sort((a, b) => (depth.get(a.spanId)! - depth.get(b.spanId)!) || a.startMs - b.startMs);
  return (
    <section className="detail" data-testid="waterfall">
      <h2>
        trace <span className="mono">{data.traceId}</span>
      </h2>
      <p className="muted">
        {data.spans.length} spans · {ms(total)} · {data.summary.failed ? 'failed' : 'ok'}
        {data.summary.failureOnly ? ' · kept because it failed (not sampled)' : ''}
      </p>
      <div className="waterfall">
        {ordered.map((s) => {
          const left = ((s.startMs - start) / total) * 100;
          const width = Math.max(((s.endMs - s.startMs) / total) * 100, 0.5);
          const attrs = Object.fromEntries(s.attributes);
          return (
            <div key={s.spanId} className="span-row" data-span-kind={s.kind === 3 ? 'client' : s.kind === 2 ? 'server' : 'other'}>
              <div className="span-name" style={{ paddingLeft: `${(depth.get(s.spanId) ?? 0) * 14}px` }} onClick={() => setOpen(open === s.spanId ? null : s.spanId)}>
                <b>{String(s.resource['service.name'] ?? '')}</b> {s.name} <span className="muted">{s.kind === 3 ? 'client' : s.kind === 2 ? 'server' : ''}</span>
              </div>
              <div className="span-track">
                <div className={`span-bar ${s.status.code === 2 ? 'bad' : 'ok'}`} style={{ left: `${left}%`, width: `${width}%` }} title={ms(s.endMs - s.startMs)} />
              </div>
              <div className="span-dur">{ms(s.endMs - s.startMs)}</div>
              {open === s.spanId && (
                <table className="attrs">
                  <tbody>
                    {Object.entries(attrs).map(([k, v]) => (
                      <tr key={k}>
                        <td className="mono">{k}</td>
                        <td className="mono">{Array.isArray(v) ? v.join(', ') : String(v)}</td>
                      </tr>
                    ))}
                    {s.status.message && (
                      <tr>
                        <td className="mono">status</td>
                        <td className="mono">{s.status.message}</td>
                      </tr>
                    )}
                  </tbody>
                </table>
              )}
            </div>
          );
        })}
      </div>
    </section>
  );
}

export function TracesView({ selected }: { selected: string }) {
  const [failedOnly, setFailedOnly] = useState(false);
  const { data, error } = usePoll<{ enabled: boolean; traces: TraceSummary[]; size: { traces: number; spans: number } }>(`api/traces?limit=200${failedOnly ? '&failed=1' : ''}`, 3000);
  if (!data) return <p className="muted">{error ?? 'loading…'}</p>;
  if (!data.enabled) return <p className="muted">The control plane's trace store is off; traces go to the collector the agents are configured with.</p>;
  return (
    <section className="split">
      <div>
        <label>
          <input type="checkbox" checked={failedOnly} onChange={(e) => setFailedOnly(e.target.checked)} /> failed only
        </label>{' '}
        <span className="muted">
          {data.size.traces} traces, {data.size.spans} spans kept
        </span>
        <table className="list" data-testid="traces">
          <thead>
            <tr>
              <th>time</th>
              <th>root</th>
              <th>services</th>
              <th>spans</th>
              <th>duration</th>
            </tr>
          </thead>
          <tbody>
            {data.traces.map((t) => (
              <tr key={t.traceId} className={`${t.failed ? 'failed' : ''} ${t.traceId === selected ? 'selected' : ''}`} onClick={() => (window.location.hash = `#/traces/${t.traceId}`)} data-trace={t.traceId}>
                <td>{time(t.startMs)}</td>
                <td>
                  {t.failed ? <span className="bad">✖ </span> : null}
                  {t.name}
                </td>
                <td>{t.services.join(', ')}</td>
                <td>{t.spans}</td>
                <td>{ms(t.durationMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {selected ? <Waterfall id={selected} /> : <p className="muted">Pick a trace to see its spans.</p>}
    </section>
  );
}
