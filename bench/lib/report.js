// Writes a run's results: JSON (latest + a dated copy when published) and a Markdown table with the
// machine's description and where nodemesh-l4 stands against the issue's targets.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const f = (x, d = 3) => (x === null || x === undefined ? '–' : typeof x === 'number' ? String(Number(x.toFixed(d))) : String(x));
const sp = (a) => (a ? ` (${f(a[0])}–${f(a[1])})` : '');

function scenarioTitle(key, plan) {
  if (key === 'S1') return `S1: ${plan.s1.rate} rps over ${plan.s1.conns} connections, ${plan.s1.dur} s`;
  if (key.startsWith('S2_')) {
    const s = plan.s2.find((x) => `S2_${x.rate}rps` === key);
    return `S2: ${s.rate} rps over ${s.conns} connections, ${s.dur} s`;
  }
  if (key === 'S3') return `S3: knee (highest rate with p99 < ${plan.s3.p99LimitMs} ms, ${plan.s3.conns} connections, ${plan.s3.dur} s steps)`;
  if (key === 'S4') return `S4: a new connection per request, ${plan.s4.rate} rps, ${plan.s4.dur} s`;
  if (key === 'S5') return `S5: one bulk TCP stream (iperf3), ${plan.s5.dur} s`;
  if (key === 'S6') return `S6: one bad instance of three (one answers 500 to 20 %, one 30 ms slower), ${plan.s6.rate} rps over ${plan.s6.conns} connections, ${plan.s6.dur} s`;
  return key;
}

/** The issue's targets for nodemesh-l4, each with the measured value and a verdict. */
function targets(r) {
  const nm = r.contenders['nodemesh-l4'];
  const hp = r.contenders['haproxy-mtls'];
  if (!nm || !hp) return [];
  const rows = [];
  const add = (name, value, limit, ok) => rows.push({ name, value, limit, ok: value === null || value === undefined ? null : ok });
  if (nm.S1) {
    add('S1 added p90 (ms)', nm.S1.added_p90_ms, '≤ 0.25', nm.S1.added_p90_ms <= 0.25);
    add('S1 added p99 (ms)', nm.S1.added_p99_ms, '≤ 0.5', nm.S1.added_p99_ms <= 0.5);
    const rp50 = r.ratios.S1 && r.ratios.S1.nodemesh_over_haproxy_added_p50;
    const rp99 = r.ratios.S1 && r.ratios.S1.nodemesh_over_haproxy_added_p99;
    const hp50 = hp.S1 ? hp.S1.added_p50_ms : null;
    const hp99 = hp.S1 ? hp.S1.added_p99_ms : null;
    // When HAProxy's added latency is within noise of zero (<= 0), the ratio is undefined: compare the
    // absolute budgets instead (1.5x / 2x of max(HAProxy added, 0)), and say so.
    add(`S1 added p50 vs HAProxy's (${f(hp50)} ms)`, rp50 !== null ? rp50 : nm.S1.added_p50_ms, rp50 !== null ? '≤ 1.5×' : '≤ 1.5 × max(HAProxy added, 0) ms', rp50 !== null ? rp50 <= 1.5 : nm.S1.added_p50_ms <= 1.5 * Math.max(hp50 || 0, 0));
    add(`S1 added p99 vs HAProxy's (${f(hp99)} ms)`, rp99 !== null ? rp99 : nm.S1.added_p99_ms, rp99 !== null ? '≤ 2×' : '≤ 2 × max(HAProxy added, 0) ms', rp99 !== null ? rp99 <= 2 : nm.S1.added_p99_ms <= 2 * Math.max(hp99 || 0, 0));
    add('S1 agent vCPU per 1000 rps, per agent (= CPU s per 1k req)', nm.S1.cpu_s_per_1k_req_per_proxy, '≤ 0.05', nm.S1.cpu_s_per_1k_req_per_proxy <= 0.05);
  }
  if (nm.S3) add('S3 knee (rps)', nm.S3.knee_rps, '≥ 20000', nm.S3.knee_rps >= 20000);
  if (nm.S5) add('S5 one stream (Gbit/s)', nm.S5.gbit_s, '≥ 3', nm.S5.gbit_s >= 3);
  const idle = r.idle && r.idle.agent_rss_mb ? Math.max(...Object.values(r.idle.agent_rss_mb)) : null;
  add(`agent RSS idle (MB, larger agent, after ${r.idle.settle_s ?? 3} s idle)`, idle, '≤ 50', idle <= 50);
  if (r.idle && r.idle.agent_rss_anon_mb) {
    const anon = Math.max(...Object.values(r.idle.agent_rss_anon_mb));
    add('  of which private (RssAnon; the rest is mostly the shared node binary)', anon, '(≤ 50)', anon <= 50);
  }
  if (nm.S3) add('agent RSS peak at 5000 rps (MB)', nm.S3.rss_peak_mb_at_5k_rps, '≤ 80', nm.S3.rss_peak_mb_at_5k_rps <= 80);
  void hp;
  return rows;
}

/** The L7 issue's targets for nodemesh-l7 against haproxy-http-mtls, at S1 and S2. */
function targetsL7(r) {
  const nm = r.contenders['nodemesh-l7'];
  const hp = r.contenders['haproxy-http-mtls'];
  if (!nm || !hp) return [];
  const rows = [];
  const add = (name, value, limit, ok) => rows.push({ name, value, limit, ok: value === null || value === undefined ? null : ok });
  for (const key of Object.keys(nm).filter((k) => k === 'S1' || k.startsWith('S2_'))) {
    const ra = r.ratios_l7 && r.ratios_l7[key];
    if (!ra || !nm[key]) continue;
    const rp50 = ra.nodemesh_over_haproxy_added_p50;
    const rp99 = ra.nodemesh_over_haproxy_added_p99;
    add(`${key} added p50 vs HAProxy-HTTP's (${f(hp[key] && hp[key].added_p50_ms)} ms)`, rp50, '≤ 1.5×', rp50 !== null && rp50 <= 1.5);
    add(`${key} added p99 vs HAProxy-HTTP's (${f(hp[key] && hp[key].added_p99_ms)} ms)`, rp99, '≤ 2×', rp99 !== null && rp99 <= 2);
    add(`${key} agent vCPU per 1000 rps, per agent`, nm[key].cpu_s_per_1k_req_per_proxy, '≤ 0.15', nm[key].cpu_s_per_1k_req_per_proxy <= 0.15);
  }
  if (nm.S3) add('S3 knee (rps)', nm.S3.knee_rps, '≥ 10000', nm.S3.knee_rps >= 10000);
  return rows;
}

const pct = (x, d = 2) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(d)} %`);

/** S6: what the client saw from each contender, the instances' shares, and whether the promise holds. */
function s6Table(L, r) {
  L.push('| contender | client success rate | non-2xx answers | p50 ms | p99 ms (2xx) | p99 ms (every answer) | 2xx rps | proxy CPU s per 1k req (both) | share good / flaky / slow |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const [c, v] of Object.entries(r.contenders)) {
    const s = v.S6;
    if (!s) continue;
    const sh = s.endpoint_share ? `${pct(s.endpoint_share.good, 1)} / ${pct(s.endpoint_share.flaky, 1)} / ${pct(s.endpoint_share.slow, 1)}` : '–';
    const range = s.spread.success_rate ? ` (${pct(s.spread.success_rate[0])}–${pct(s.spread.success_rate[1])})` : '';
    L.push(`| ${c} | ${pct(s.success_rate)}${range} | ${s.non_2xx} | ${f(s.p50_ms)}${sp(s.spread.p50_ms)} | ${f(s.p99_ms)}${sp(s.spread.p99_ms)} | ${f(s.p99_all_answers_ms)} | ${f(s.rate_rps, 1)} | ${f(s.cpu_s_per_1k_req, 4)} | ${sh} |`);
  }
  L.push('');
  L.push('Shares: direct, what each instance answered; nodemesh-l7, what each enrolled instance received (node-b\'s destination counter, retries included); HAProxy, the responses B passed on per server (an attempt it retried is not among them).');
  if (r.s6 && r.s6.config) {
    L.push('');
    for (const [k, v] of Object.entries(r.s6.config)) L.push(`- ${k}: ${v}`);
  }
  const v = r.s6 && r.s6.verdict;
  if (v) {
    L.push('');
    L.push('Does the proxy make the client\'s success rate higher and its p99 lower than direct (issue 17)?');
    L.push('');
    for (const [c, x] of Object.entries(v)) {
      L.push(`- **${c}**: success ${pct(x.success_rate)} vs ${pct(x.direct_success_rate)} (${x.higher_success ? 'higher' : 'not higher'}), p99 ${f(x.p99_ms)} vs ${f(x.direct_p99_ms)} ms (${x.lower_p99 ? 'lower' : 'not lower'}): **${x.holds ? 'holds' : 'does not hold'}**.`);
    }
  }
}

function markdown(r) {
  const m = r.machine;
  const L = [];
  L.push(`# nodemesh benchmark — ${r.date.slice(0, 10)} (${r.mode} run, ${r.reps} rep${r.reps > 1 ? 's' : ''}, git ${r.git})`);
  L.push('');
  L.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.mem_gib} GiB, Linux ${m.kernel}, Node ${m.node} (OpenSSL ${m.node_openssl}), system ${m.openssl}, ${m.haproxy}, ${m.iperf3}. Load average at start: ${m.loadavg_at_start.join(' ')} (the machine is shared: numbers are noisier than on a quiet host).`);
  L.push('');
  L.push(`Pinning: load generator, HTTP server and iperf3 on CPU ${r.pinning.load_generator_and_servers_cpu}; both agents (all threads) or both HAProxy processes on CPU ${r.pinning.agents_and_haproxy_cpu}${(r.pinning.threads_per_proxy ?? 1) > 1 ? `, ${r.pinning.threads_per_proxy} threads each (agents' --concurrency, HAProxy's nbthread)` : ''}. CPU: ${r.cpu_source['nodemesh-l4']}; HAProxy: ${r.cpu_source['haproxy-mtls']}. Latency is measured from the intended send time (open loop). Values are medians over reps, (min–max) across reps; "added" = contender − direct, paired per rep.`);
  if (r.skipped.length) {
    L.push('');
    L.push(`Skipped in this run: ${r.skipped.join('; ')}.`);
  }
  L.push('');
  const keys = Object.keys(r.contenders.direct);
  for (const key of keys) {
    L.push(`## ${scenarioTitle(key, r.plan)}`);
    L.push('');
    if (key === 'S5') {
      L.push('| contender | Gbit/s | proxy CPU s per GB | proxy RSS peak MB | errors |');
      L.push('|---|---|---|---|---|');
      for (const [c, v] of Object.entries(r.contenders)) {
        const s = v[key];
        if (s) L.push(`| ${c} | ${f(s.gbit_s, 2)}${sp(s.spread.gbit_s)} | ${f(s.cpu_s_per_gb)} | ${f(s.rss_peak_mb, 1)} | ${s.errors} |`);
      }
    } else if (key === 'S6') {
      s6Table(L, r);
    } else if (key === 'S3') {
      L.push('| contender | knee rps | first failing rps | p50 / p99 ms at knee | proxy CPU s per 1k req at knee | RSS peak MB at 5k rps |');
      L.push('|---|---|---|---|---|---|');
      for (const [c, v] of Object.entries(r.contenders)) {
        const s = v[key];
        if (s) L.push(`| ${c} | ${f(s.knee_rps)}${s.ladder_capped ? ' (ladder top)' : ''} | ${f(s.first_fail_rps)} | ${f(s.p50_ms)} / ${f(s.p99_ms)} | ${f(s.cpu_s_per_1k_req, 4)} | ${f(s.rss_peak_mb_at_5k_rps, 1)} |`);
      }
    } else {
      L.push('| contender | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 / p90 / p99 ms | rate rps | errors | proxy CPU s per 1k req (both) | RSS peak / steady MB (larger proxy) | private steady MB |');
      L.push('|---|---|---|---|---|---|---|---|---|---|---|');
      for (const [c, v] of Object.entries(r.contenders)) {
        const s = v[key];
        if (!s) continue;
        const added = c === 'direct' ? '–' : `${f(s.added_p50_ms)} / ${f(s.added_p90_ms)} / ${f(s.added_p99_ms)}`;
        L.push(
          `| ${c} | ${f(s.p50_ms)}${sp(s.spread.p50_ms)} | ${f(s.p90_ms)}${sp(s.spread.p90_ms)} | ${f(s.p99_ms)}${sp(s.spread.p99_ms)} | ${f(s.p999_ms)} | ${added} | ${f(s.rate_rps, 1)} | ${s.errors} | ${f(s.cpu_s_per_1k_req, 4)} | ${f(s.rss_peak_mb, 1)} / ${f(s.rss_steady_mb, 1)} | ${f(s.rss_anon_steady_mb, 1)} |`,
        );
      }
      const ra = r.ratios[key];
      if (ra) L.push('', `L4: nodemesh/haproxy added p50 ${f(ra.nodemesh_over_haproxy_added_p50, 2)}, p99 ${f(ra.nodemesh_over_haproxy_added_p99, 2)}; nodemesh/direct p50 ${f(ra.nodemesh_over_direct_p50, 2)}, p99 ${f(ra.nodemesh_over_direct_p99, 2)}; CPU nodemesh/haproxy ${f(ra.nodemesh_over_haproxy_cpu, 2)}.`);
      const rl = r.ratios_l7 && r.ratios_l7[key];
      if (rl) L.push('', `L7: nodemesh-l7/haproxy-http-mtls added p50 ${f(rl.nodemesh_over_haproxy_added_p50, 2)}, p99 ${f(rl.nodemesh_over_haproxy_added_p99, 2)}; nodemesh-l7/direct p50 ${f(rl.nodemesh_over_direct_p50, 2)}, p99 ${f(rl.nodemesh_over_direct_p99, 2)}; CPU nodemesh-l7/haproxy-http-mtls ${f(rl.nodemesh_over_haproxy_cpu, 2)}.`);
    }
    L.push('');
  }
  L.push('## nodemesh-l4 against the targets (issue 5)');
  L.push('');
  L.push('| target | measured | limit | holds |');
  L.push('|---|---|---|---|');
  for (const t of targets(r)) L.push(`| ${t.name} | ${f(t.value)} | ${t.limit} | ${t.ok === null ? 'not measured' : t.ok ? 'yes' : 'no'} |`);
  L.push('');
  const l7 = targetsL7(r);
  if (l7.length) {
    L.push('## nodemesh-l7 against the targets (the L7 issue)');
    L.push('');
    if (r.l7) L.push(`Route: ${r.l7.route}. HAProxy: ${r.l7.haproxy}.`, '');
    L.push('| target | measured | limit | holds |');
    L.push('|---|---|---|---|');
    for (const t of l7) L.push(`| ${t.name} | ${f(t.value)} | ${t.limit} | ${t.ok === null ? 'not measured' : t.ok ? 'yes' : 'no'} |`);
    L.push('');
  }
  const idleLine = r.idle.agent_rss_anon_mb
    ? `Idle (after ${r.idle.settle_s} s without traffic): agent RSS ${JSON.stringify(r.idle.agent_rss_mb)} MB, private ${JSON.stringify(r.idle.agent_rss_anon_mb)} MB (right after start-up: ${JSON.stringify(r.idle.agent_rss_after_start_mb)} MB), agent CPU ${JSON.stringify(r.idle.agent_vcpu)} vCPU; HAProxy RSS ${JSON.stringify(r.idle.haproxy_rss_mb)} MB, private ${JSON.stringify(r.idle.haproxy_rss_anon_mb)} MB. Run took ${r.duration_s} s.`
    : `Idle: agent RSS ${JSON.stringify(r.idle.agent_rss_mb)} MB, agent CPU ${JSON.stringify(r.idle.agent_vcpu)} vCPU (node-a, node-b); HAProxy RSS ${JSON.stringify(r.idle.haproxy_rss_mb)} MB. Run took ${r.duration_s} s.`;
  L.push(idleLine);
  if (r.crosscheck) {
    L.push('');
    L.push('## Load generator cross-check against wrk (S1 connections, wrk paced by a Lua delay())');
    L.push('');
    L.push('| path | wrk rps | wrk p50 / p90 / p99 ms | ours at wrk\'s rate: service p50 / p90 / p99 ms | ours: from intended send p50 / p90 / p99 ms |');
    L.push('|---|---|---|---|---|');
    for (const [c, x] of Object.entries(r.crosscheck)) {
      L.push(`| ${c} | ${f(x.wrk.rate_rps, 0)} | ${f(x.wrk.p50_ms)} / ${f(x.wrk.p90_ms)} / ${f(x.wrk.p99_ms)} | ${f(x.loadgen.service.p50)} / ${f(x.loadgen.service.p90)} / ${f(x.loadgen.service.p99)} | ${f(x.loadgen.intended.p50)} / ${f(x.loadgen.intended.p90)} / ${f(x.loadgen.intended.p99)} |`);
    }
  }
  L.push('');
  return L.join('\n');
}

/** @returns {string[]} the files written */
function writeResults(r, o) {
  const written = [];
  const dir = o.publish ? o.dir : path.join(o.dir, 'quick');
  fs.mkdirSync(dir, { recursive: true });
  const md = markdown(r);
  const w = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    written.push(p);
  };
  w('latest.json', JSON.stringify(r, null, 2) + '\n');
  w('latest.md', md);
  if (o.publish) {
    const stamp = r.date.slice(0, 16).replace(/[:T]/g, '-');
    w(`${stamp}.json`, JSON.stringify({ ...r, raw: o.raw }, null, 2) + '\n');
    w(`${stamp}.md`, md);
  }
  return written;
}

module.exports = { writeResults, markdown, targets, targetsL7 };
