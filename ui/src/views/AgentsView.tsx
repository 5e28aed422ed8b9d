// Each node's agent: readiness, version, uptime, CPU and memory, xDS state (last NACK), certificates and
// their expiry, tracing export.
import { usePoll, type AgentView } from '../api';
import { bytes, duration } from '../format';

export function AgentsView() {
  const { data, error } = usePoll<{ agents: AgentView[] }>('api/agents', 3000);
  if (!data) return <p className="muted">{error ?? 'loading…'}</p>;
  if (data.agents.length === 0) return <p className="muted">No agent has reported yet (agents stream to the control plane at their --xds address).</p>;
  return (
    <table data-testid="agents">
      <thead>
        <tr>
          <th>node</th>
          <th>state</th>
          <th>version</th>
          <th>uptime</th>
          <th>CPU</th>
          <th>memory</th>
          <th>pods</th>
          <th>xDS</th>
          <th>certificates</th>
          <th>tracing</th>
        </tr>
      </thead>
      <tbody>
        {data.agents.map((a) => {
          const nacks = Object.entries(a.xds?.lastNack ?? {});
          return (
            <tr key={a.node} data-agent={a.node}>
              <td>{a.node}</td>
              <td className={!a.connected ? 'bad' : a.ready ? 'ok' : 'warn'}>{!a.connected ? `gone (${duration(-a.lastReportAgoMs / 1000)})` : a.ready ? 'ready' : `not ready: ${a.notReadyReason}`}</td>
              <td>{a.version}</td>
              <td>{duration(a.uptimeS)}</td>
              <td>{(a.cpuCores * 100).toFixed(1)}%</td>
              <td>
                {bytes(a.rssBytes)} <span className="muted">(heap {bytes(a.heapUsedBytes)}, {a.threads} thread{a.threads > 1 ? 's' : ''})</span>
              </td>
              <td>{a.pods}</td>
              <td className={!a.xds ? 'muted' : nacks.length > 0 || !a.xds.connected ? 'warn' : 'ok'}>
                {!a.xds ? 'no control plane' : `${a.xds.connected ? 'connected' : 'disconnected'}, ${a.xds.synced ? 'ACKed' : 'syncing'} (${a.xds.mode})`}
                {nacks.map(([t, m]) => (
                  <div key={t} className="bad">
                    NACK {t}: {m}
                  </div>
                ))}
              </td>
              <td>
                {a.certificates.map((c) => (
                  <div key={c.identity} className={c.expiresInS < 3600 ? 'bad' : c.state === 'valid' ? '' : 'warn'}>
                    {c.identity.replace(/^spiffe:\/\/[^/]+\//, '')}: {c.state}, expires in {duration(c.expiresInS)}
                  </div>
                ))}
              </td>
              <td>{a.tracing ? `${a.tracing.defaultPercent}% → ${a.tracing.endpoint}; ${a.tracing.exported} exported, ${a.tracing.dropped} dropped` : 'off'}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
