// One check's outcome and how `nodemesh check` prints a list of them: each failure names what to fix.

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Short, stable name, e.g. `kernel`, `rbac:create daemonsets`. */
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

export function ok(name: string, detail: string): CheckResult {
  return { name, status: 'ok', detail };
}
export function warn(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'warn', detail, fix };
}
export function fail(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'fail', detail, fix };
}

export function renderReport(title: string, results: CheckResult[]): string {
  const mark = { ok: '√', warn: '‼', fail: '×' } as const;
  const lines = [title, '-'.repeat(title.length)];
  for (const r of results) {
    lines.push(`${mark[r.status]} ${r.name}: ${r.detail}`);
    if (r.fix && r.status !== 'ok') lines.push(`    fix: ${r.fix}`);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  lines.push('', failed ? `Status check results are × (${failed} failed, ${warned} warnings)` : `Status check results are √${warned ? ` (${warned} warnings)` : ''}`);
  return `${lines.join('\n')}\n`;
}
