#!/usr/bin/env bash
# Profiles both lab agents under one bench scenario, with V8's sampler (--cpu-prof: JS self time) or
# with perf (native and kernel symbols; --perf-basic-prof names JIT frames). Not both at once: V8's
# sampler signals the main thread ~1000 times a second, which perf would then mostly see.
# Root; run from the repository root after a build.
#
#   [CONTENDERS=nodemesh-l7] bash bench/profile.sh S1|S4|S5 v8|perf [OUTDIR]
#
# CONTENDERS: run only these contenders besides direct (run.js --contenders), so the profile holds one path.
# Runs `node bench/run.js --reps 1 --only SCENARIO --no-publish` with the agents started under the
# chosen profiler (the lab's --agent-command), and for perf attaches `perf record` to both agent
# pids once the lab is ready; prints bench/profile-summary.js or `perf report` by symbol.
set -euo pipefail
SCEN=${1:-S1}
MODE=${2:-v8}
OUT=${3:-/tmp/nodemesh-profile-$SCEN-$MODE}
LAB=benchprof
SECS=$([ "$SCEN" = S5 ] && echo 25 || echo 55)
rm -rf "$OUT" && mkdir -p "$OUT"
NODE=$(command -v node)
CLI=$(pwd)/dist/src/cli/main.js
# The lab's own V8 flags (src/lab/up.ts), so the profiled agents run as the bench's do.
LAB_FLAGS=$(node -p "require('./dist/src/lab').AGENT_NODE_FLAGS.join(' ')")
if [ "$MODE" = v8 ]; then FLAGS="$LAB_FLAGS --cpu-prof --cpu-prof-dir=$OUT"; else FLAGS="$LAB_FLAGS --perf-basic-prof"; fi
node bench/run.js --reps 1 --only "$SCEN" --no-publish --name "$LAB" ${CONTENDERS:+--contenders "$CONTENDERS"} \
  --agent-command "$NODE $FLAGS $CLI agent" 2> "$OUT/bench.err" > "$OUT/bench.out" &
BENCH=$!
trap 'kill $BENCH 2>/dev/null || true' INT TERM
until grep -q 'ready after' "$OUT/bench.err" 2>/dev/null; do
  kill -0 $BENCH 2>/dev/null || { cat "$OUT/bench.err"; exit 1; }
  sleep 0.5
done
if [ "$MODE" = v8 ]; then
  wait $BENCH || true
  grep -E "nodemesh-l[47]" "$OUT/bench.err" || true
  echo "== V8 self time (after start-up)"
  node bench/profile-summary.js "$OUT"/*.cpuprofile --skip-s 12 --top 30
  exit 0
fi
PIDS=$(node -e "const s=require('/run/nodemesh/lab/$LAB/state.json'); console.log(s.nodes.map(n=>n.agent.pid).join(','))")
perf record -F 499 -p "$PIDS" -o "$OUT/perf.data" -- sleep "$SECS" 2> "$OUT/perf.err" || true
wait $BENCH || true
grep -E "nodemesh-l[47]" "$OUT/bench.err" || true
echo "== perf, by shared object"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo "== perf, top symbols"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
