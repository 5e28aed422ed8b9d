// Golden signals per workload: what it serves (inbound, its own agent's view) and what it calls (outbound).
import { usePoll, type WorkloadView } from '../api';
import { health, ms, pct, rps } from '../format';

export function WorkloadsView({ windowS }: { windowS: number }) {
  const { data, error } = usePoll<{ workloads: WorkloadView[] }>(`api/workloads?window=${windowS}`, 3000);
  if (!data) return <p className="muted">{error ?? 'loading…'}</p>;
  return (
    <table data-testid="workloads">
      <thead>
        <tr>
          <th rowSpan={2}>workload</th>
          <th colSpan={3}>inbound</th>
          <th colSpan={3}>outbound</th>
        </tr>
        <tr>
          <th>rps</th>
          <th>success</th>
          <th>p99</th>
          <th>rps</th>
          <th>success</th>
          <th>p99</th>
        </tr>
      </thead>
      <tbody>
        {data.workloads.map((w) => (
          <tr key={`${w.workload}.${w.namespace}`}>
            <td>
              {w.workload}.{w.namespace}
            </td>
            <td>{rps(w.inbound.rps)}</td>
            <td className={health(w.inbound.successRate)}>{pct(w.inbound.successRate)}</td>
            <td>{ms(w.inbound.p99)}</td>
            <td>{rps(w.outbound.rps)}</td>
            <td className={health(w.outbound.successRate)}>{pct(w.outbound.successRate)}</td>
            <td>{ms(w.outbound.p99)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
