// How numbers read on the dashboard.
export const rps = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
export const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(x === 1 ? 0 : 1)}%`);
export const ms = (x: number | null): string => (x === null ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : x >= 10 ? `${x.toFixed(0)} ms` : `${x.toFixed(2)} ms`);
export const bytes = (x: number): string => (x >= 1 << 30 ? `${(x / (1 << 30)).toFixed(1)} GiB` : x >= 1 << 20 ? `${(x / (1 << 20)).toFixed(1)} MiB` : x >= 1024 ? `${(x / 1024).toFixed(1)} KiB` : `${Math.round(x)} B`);
export const duration = (s: number): string => {
  const a = Math.abs(s);
  const t = a >= 86400 ? `${(a / 86400).toFixed(1)} d` : a >= 3600 ? `${(a / 3600).toFixed(1)} h` : a >= 60 ? `${Math.round(a / 60)} min` : `${Math.round(a)} s`;
  return s < 0 ? `${t} ago` : t;
};
export const time = (msEpoch: number): string => new Date(msEpoch).toLocaleTimeString(undefined, { hour12: false });
/** Success below 99 % is a warning, below 95 % an error. */
export const health = (success: number | null): 'ok' | 'warn' | 'bad' | 'idle' => (success === null ? 'idle' : success >= 0.99 ? 'ok' : success >= 0.95 ? 'warn' : 'bad');
