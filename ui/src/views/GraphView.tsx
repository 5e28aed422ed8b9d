// Who calls whom, live: workloads and services as boxes, left to right by call depth; each edge with its
// request rate, success rate and p99 (TCP edges: bytes and connections per second), and whether it is mTLS
// (solid, a lock) or plaintext (dashed, red).
import { useMemo } from 'react';
import { usePoll, type GraphEdge, type GraphNode } from '../api';
import { bytes, health, ms, pct, rps } from '../format';

interface Laid {
  node: GraphNode;
  x: number;
  y: number;
}

const W = 190;
const H = 44;
const COL = 440;
const ROW = 84;

/** Columns by longest path from a caller (cycles cut after as many rounds as there are nodes). */
function layout(nodes: GraphNode[], edges: GraphEdge[]): { laid: Map<string, Laid>; width: number; height: number } {
  const rank = new Map(nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < nodes.length; i++) {
    let changed = false;
    for (const e of edges) {
      const r = (rank.get(e.source) ?? 0) + 1;
      if (r > (rank.get(e.target) ?? 0) && r < nodes.length + 1) {
        rank.set(e.target, r);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const cols = new Map<number, GraphNode[]>();
  for (const n of nodes) {
    const r = rank.get(n.id) ?? 0;
    cols.set(r, [...(cols.get(r) ?? []), n]);
  }
  const laid = new Map<string, Laid>();
  let maxRows = 1;
  for (const [r, ns] of cols) {
    ns.sort((a, b) => a.id.localeCompare(b.id));
    maxRows = Math.max(maxRows, ns.length);
    ns.forEach((n, i) => laid.set(n.id, { node: n, x: 20 + r * COL, y: 20 + i * ROW }));
  }
  return { laid, width: 40 + Math.max(...[...cols.keys(), 0]) * COL + W, height: 40 + maxRows * ROW };
}

function edgeLabel(e: GraphEdge): string {
  if (e.protocol === 'tcp') return `${bytes(e.bytesPerSecond ?? 0)}/s · ${rps(e.connectionsPerSecond ?? 0)} conn/s`;
  return `${rps(e.signals.rps)} rps · ${pct(e.signals.successRate)} · p99 ${ms(e.signals.p99)}`;
}

export function GraphView({ windowS }: { windowS: number }) {
  const { data, error } = usePoll<{ nodes: GraphNode[]; edges: GraphEdge[] }>(`api/graph?window=${windowS}`, 2000);
  const g = useMemo(() => (data ? layout(data.nodes, data.edges) : null), [data]);
  if (!data || !g) return <p className="muted">{error ?? 'loading…'}</p>;
  if (data.nodes.length === 0) return <p className="muted">No traffic in the last {windowS} s. Agents report every 2 s; send some requests.</p>;
  return (
    <section>
      <p className="legend">
        solid: mTLS · <span className="bad">dashed red: plaintext</span> · HTTP edges: requests per second, success rate, p99; TCP edges: bytes and connections per second; over the last {windowS} s
      </p>
      <div className="graph-wrap">
        <svg width={g.width} height={g.height} data-testid="graph">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill="#64748b" />
            </marker>
          </defs>
          {data.edges.map((e) => {
            const a = g.laid.get(e.source);
            const b = g.laid.get(e.target);
            if (!a || !b) return null;
            const x1 = a.x + W;
            const y1 = a.y + H / 2;
            const x2 = b.x;
            const y2 = b.y + H / 2;
            const mx = (x1 + x2) / 2;
            const cls = `edge ${e.mtls ? 'mtls' : 'plaintext'} ${e.protocol === 'tcp' ? 'idle' : health(e.signals.successRate)}`;
            return (
              <g key={`${e.source}>${e.target}>${e.protocol}`} className={cls} data-edge={`${a.node.name}.${a.node.namespace}->${b.node.name}.${b.node.namespace}`} data-mtls={String(e.mtls)} data-protocol={e.protocol}>
                <path d={`M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 4} ${y2}`} markerEnd="url(#arrow)" />
                <text x={mx} y={(y1 + y2) / 2 - 6} textAnchor="middle">
                  <tspan className="sec">{e.mtls ? 'mTLS' : 'plaintext'}</tspan> · {edgeLabel(e)}
                </text>
              </g>
            );
          })}
          {[...g.laid.values()].map(({ node, x, y }) => {
            const box = (
              <g key={node.id} className={`node ${node.kind}`} data-node={`${node.name}.${node.namespace}`}>
                <rect x={x} y={y} width={W} height={H} rx={node.kind === 'service' ? 22 : 6} />
                <text x={x + W / 2} y={y + 19} textAnchor="middle" className="name">
                  {node.name.length > 24 ? `${node.name.slice(0, 23)}…` : node.name}
                </text>
                <text x={x + W / 2} y={y + 34} textAnchor="middle" className="sub">
                  {node.kind === 'outside' ? 'not in the mesh' : `${node.kind} · ${node.namespace}`}
                </text>
              </g>
            );
            return node.kind === 'service' ? (
              <a key={node.id} href={`#/services/${encodeURIComponent(`${node.name}.${node.namespace}`)}`}>
                {box}
              </a>
            ) : (
              box
            );
          })}
        </svg>
      </div>
    </section>
  );
}
