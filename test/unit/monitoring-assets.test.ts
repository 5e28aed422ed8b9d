// Unit: what deploy/monitoring ships is valid for the real tools. The alerting rules pass `promtool check
// rules` and their `promtool test rules`; every Grafana panel's query parses as PromQL (checked as recording
// rules, template variables filled in) and names only metrics the mesh exports; the PrometheusRule carries
// the same groups as the plain rules file; the lab's generated prometheus.yml passes `promtool check config`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { prometheusConfig } from '../../src/lab/prometheus';
import type { LabState } from '../../src/lab/state';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DIR = path.join(ROOT, 'deploy', 'monitoring');
const PROMTOOL = '/usr/bin/promtool';

function promtool(args: string[], cwd = DIR): string {
  try {
    return execFileSync(PROMTOOL, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

const noPromtool = fs.existsSync(PROMTOOL) ? false : `${PROMTOOL} is missing: apt-get install prometheus (scripts/dev.sh setup installs it)`;

/** Metric name prefixes the mesh and Node export; a dashboard query naming anything else is a typo. */
const KNOWN = [/^istio_/, /^nodemesh_/, /^process_/, /^nodejs_/, /^up$/];

describe('deploy/monitoring', () => {
  it('alerting rules pass promtool check rules and promtool test rules', { skip: noPromtool }, () => {
    assert.match(promtool(['check', 'rules', 'nodemesh-agent-rules.yaml']), /SUCCESS: \d+ rules found/);
    assert.match(promtool(['test', 'rules', 'nodemesh-agent-rules.test.yaml']), /SUCCESS/);
  });

  it('the PrometheusRule carries the same groups as the plain rules file', () => {
    const plain = parse(fs.readFileSync(path.join(DIR, 'nodemesh-agent-rules.yaml'), 'utf8')) as { groups: unknown[] };
    const docs = parseAllDocuments(fs.readFileSync(path.join(DIR, 'kubernetes-monitors.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { groups?: unknown[] } });
    const rule = docs.find((d) => d.kind === 'PrometheusRule')!;
    assert.deepEqual(rule.spec.groups, plain.groups);
    assert.deepEqual(docs.map((d) => d.kind), ['PodMonitor', 'ServiceMonitor', 'PrometheusRule']);
  });

  it("every Grafana panel's query parses as PromQL and names metrics the mesh exports", { skip: noPromtool }, () => {
    const files = fs.readdirSync(path.join(DIR, 'grafana')).filter((f) => f.endsWith('.json'));
    assert.deepEqual(files.sort(), ['agent-resources.json', 'mesh-overview.json', 'service.json', 'workload.json']);
    const rules: { record: string; expr: string }[] = [];
    for (const f of files) {
      const d = JSON.parse(fs.readFileSync(path.join(DIR, 'grafana', f), 'utf8')) as { uid: string; panels: { title: string; targets: { expr: string }[] }[] };
      assert.ok(d.uid.startsWith('nodemesh-'));
      for (const p of d.panels) {
        assert.ok(p.targets.length > 0, `${f}: panel "${p.title}" has a query`);
        for (const t of p.targets) {
          const expr = t.expr.replace(/\$\{?[a-z]+\}?/g, 'x');
          rules.push({ record: `dashboard:${rules.length}`, expr });
          for (const m of expr.matchAll(/\b([a-z_][a-z0-9_]*)(?=\{|\[)/g)) {
            const name = m[1]!;
            if (/^(sum|rate|increase|histogram_quantile|round|count|changes|by|le|time)$/.test(name)) continue;
            assert.ok(KNOWN.some((k) => k.test(name)), `${f}: "${p.title}" names ${name}`);
          }
        }
      }
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-dash-'));
    try {
      fs.writeFileSync(path.join(tmp, 'rules.yaml'), JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
      assert.match(promtool(['check', 'rules', 'rules.yaml'], tmp), new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("the lab's prometheus.yml passes promtool check config", { skip: noPromtool }, () => {
    const state = { lab: 'obs', nodes: [{ name: 'node-a', fabricIP: '198.18.0.1' }, { name: 'node-b', fabricIP: '198.18.0.2' }] } as unknown as LabState;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-prom-'));
    try {
      fs.copyFileSync(path.join(DIR, 'nodemesh-agent-rules.yaml'), path.join(tmp, 'rules.yaml'));
      const text = prometheusConfig(state, { rulesFiles: [path.join(tmp, 'rules.yaml')] });
      fs.writeFileSync(path.join(tmp, 'prometheus.yml'), text);
      assert.match(promtool(['check', 'config', 'prometheus.yml'], tmp), /SUCCESS/);
      assert.match(text, /targets: \["198\.18\.0\.1:15020"\]/);
      assert.match(text, /targets: \["127\.0\.0\.1:15014"\]/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
