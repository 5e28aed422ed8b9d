// Aggregation across repetitions: medians with [min, max] spread, added latency and ratios computed
// pairwise (each rep of a contender against the same rep of the baseline, run minutes apart at most).
'use strict';

const r3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);

function median(xs) {
  const v = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function spread(xs) {
  const v = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x));
  if (v.length === 0) return null;
  return [r3(Math.min(...v)), r3(Math.max(...v))];
}

const LAT_KEYS = [
  ['p50_ms', 'p50'],
  ['p90_ms', 'p90'],
  ['p99_ms', 'p99'],
  ['p999_ms', 'p999'],
];

/**
 * One scenario's reps of one contender -> the published record.
 * @param {object[]} reps  per rep: {load (loadgen JSON), cpu_s, sent, rss_peak_mb, rss_steady_mb}
 * @param {object[]|null} baseReps  the `direct` reps of the same scenario, same order
 */
function aggregateHttp(reps, baseReps) {
  const out = {};
  for (const [k, src] of LAT_KEYS) out[k] = r3(median(reps.map((r) => r.load.latency_ms[src])));
  out.rate_rps = r3(median(reps.map((r) => r.load.rate_rps)));
  out.errors = reps.reduce((s, r) => s + r.load.errors, 0);
  for (const [k, src] of LAT_KEYS.slice(0, 3)) {
    const key = `added_${k}`;
    out[key] = baseReps ? r3(median(reps.map((r, i) => (baseReps[i] ? r.load.latency_ms[src] - baseReps[i].load.latency_ms[src] : null)))) : null;
  }
  out.cpu_s_per_1k_req = reps[0].cpu_s === null ? null : r3(median(reps.map((r) => (r.cpu_s / r.load.sent_total) * 1000)));
  out.cpu_s_per_1k_req_per_proxy = out.cpu_s_per_1k_req === null ? null : r3(median(reps.map((r) => (r.cpu_max_s / r.load.sent_total) * 1000)));
  out.rss_peak_mb = reps[0].rss_peak_mb === null ? null : r3(Math.max(...reps.map((r) => r.rss_peak_mb)));
  out.rss_steady_mb = reps[0].rss_steady_mb === null ? null : r3(median(reps.map((r) => r.rss_steady_mb)));
  out.rss_anon_steady_mb = reps[0].rss_anon_steady_mb == null ? null : r3(median(reps.map((r) => r.rss_anon_steady_mb)));
  out.service_p50_ms = r3(median(reps.map((r) => r.load.service_ms.p50)));
  out.service_p99_ms = r3(median(reps.map((r) => r.load.service_ms.p99)));
  out.send_lag_p50_ms = r3(median(reps.map((r) => r.load.send_lag_ms.p50)));
  out.reps = reps.length;
  out.spread = {};
  for (const [k, src] of LAT_KEYS) out.spread[k] = spread(reps.map((r) => r.load.latency_ms[src]));
  out.spread.rate_rps = spread(reps.map((r) => r.load.rate_rps));
  if (baseReps) {
    for (const [k, src] of LAT_KEYS.slice(0, 3)) {
      out.spread[`added_${k}`] = spread(reps.map((r, i) => (baseReps[i] ? r.load.latency_ms[src] - baseReps[i].load.latency_ms[src] : null)));
    }
  }
  return out;
}

function aggregateBulk(reps) {
  const out = {
    gbit_s: r3(median(reps.map((r) => r.gbit_s))),
    cpu_s_per_gb: reps[0].cpu_s === null ? null : r3(median(reps.map((r) => r.cpu_s / (r.bytes / 1e9)))),
    rss_peak_mb: reps[0].rss_peak_mb === null ? null : r3(Math.max(...reps.map((r) => r.rss_peak_mb))),
    errors: reps.filter((r) => r.error).length,
    reps: reps.length,
    spread: { gbit_s: spread(reps.map((r) => r.gbit_s)) },
  };
  return out;
}

/** nodemesh/haproxy and nodemesh/direct, from the pairwise-medianed records. */
function ratios(nm, hp, direct) {
  // A ratio over a non-positive denominator (HAProxy adding nothing measurable) means nothing: null.
  const div = (a, b) => (a === null || b === null || b === undefined || a === undefined || b <= 0 ? null : r3(a / b));
  const out = {};
  if (nm.gbit_s !== undefined) {
    out.nodemesh_over_haproxy_gbit_s = div(nm.gbit_s, hp && hp.gbit_s);
    out.nodemesh_over_direct_gbit_s = div(nm.gbit_s, direct && direct.gbit_s);
    return out;
  }
  if (nm.knee_rps !== undefined) {
    out.nodemesh_over_haproxy_knee = div(nm.knee_rps, hp && hp.knee_rps);
    out.nodemesh_over_direct_knee = div(nm.knee_rps, direct && direct.knee_rps);
    return out;
  }
  for (const k of ['p50', 'p90', 'p99']) {
    out[`nodemesh_over_haproxy_added_${k}`] = div(nm[`added_${k}_ms`], hp && hp[`added_${k}_ms`]);
    out[`nodemesh_over_direct_${k}`] = div(nm[`${k}_ms`], direct && direct[`${k}_ms`]);
  }
  out.nodemesh_over_haproxy_cpu = div(nm.cpu_s_per_1k_req, hp && hp.cpu_s_per_1k_req);
  return out;
}

module.exports = { median, spread, aggregateHttp, aggregateBulk, ratios, r3 };
