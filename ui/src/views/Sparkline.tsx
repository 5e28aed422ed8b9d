// A small line chart of one series over time (no axes): the shape of the last minutes at a glance.
export function Sparkline({ points, width = 220, height = 40, label }: { points: (number | null)[]; width?: number; height?: number; label: string }) {
  const vals = points.map((p) => p ?? 0);
  const max = Math.max(...vals, 1e-9);
  const step = vals.length > 1 ? width / (vals.length - 1) : width;
  const d = vals.map((v, i) => `${i === 0 ? 'M' : 'L'} ${(i * step).toFixed(1)} ${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(' ');
  return (
    <svg width={width} height={height} className="spark" aria-label={label}>
      <path d={d} />
    </svg>
  );
}
