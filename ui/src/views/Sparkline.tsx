// A small line chart of one series over time (no axes): the shape of the last minutes at a glance.
export function Sparkline({ points, width = 220, height = 40, label }: { points: (number | null)[]; width?: number; height?: number; label: string }) {
  // No value (no requests then): a gap in the line, not a drop to zero.
  const max = Math.max(...points.map((p) => p ?? 0), 1e-9);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  let pen = 'M';
  const d = points
    .map((v, i) => {
      if (v === null) {
        pen = 'M';
        return '';
      }
      const seg = `${pen} ${(i * step).toFixed(1)} ${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`;
      pen = 'L';
      return seg;
    })
    .join(' ');
  return (
    <svg width={width} height={height} className="spark" aria-label={label}>
      <path d={d} />
    </svg>
  );
}
