// The fuzz tier: every target (targets.ts) under libFuzzer for its share of a bounded budget, one test each.
// A target fails on any finding (a crash, a broken invariant, an input over the time bound, memory over the
// bound), with the input saved under corpus/TARGET/crashes/ and printed as base64. Every run first replays the
// target's committed seeds and regressions.
//
//   NODEMESH_FUZZ_SECONDS   the whole tier's fuzzing time, shared evenly (default 150; run-tests.js --fuzz-seconds)
//   NODEMESH_FUZZ_TARGETS   a comma-separated subset of targets
//   NODEMESH_FUZZ_SUMMARY   a file to write the per-target results to as JSON (run-tests.js prints it as a table)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { describeArtifact, fuzzTarget, summaryLine, targetsNamed, type FuzzResult } from './runner';

const DEFAULT_SECONDS = 150;
/** What starting a target's process costs (Node, instrumenting, loading the seeds), outside libFuzzer's clock. */
const STARTUP_SECONDS = 2;

const total = Number(process.env.NODEMESH_FUZZ_SECONDS ?? DEFAULT_SECONDS);
const names = (process.env.NODEMESH_FUZZ_TARGETS ?? '').split(',').filter(Boolean);
const { run, placeholders } = targetsNamed(names);
const each = Math.max(2, Math.floor(total / Math.max(1, run.length)) - STARTUP_SECONDS);
const results: FuzzResult[] = [];

describe(`fuzz (${run.length} targets, ${each} s each)`, () => {
  after(() => {
    const file = process.env.NODEMESH_FUZZ_SUMMARY;
    if (file) fs.writeFileSync(file, JSON.stringify({ results, placeholders: placeholders.map((p) => ({ target: p.name, why: p.placeholder })) }));
  });

  for (const entry of run) {
    it(`${entry.name}: ${entry.invariant}`, async (t) => {
      const r = await fuzzTarget(entry.name, { seconds: each });
      results.push(r);
      t.diagnostic(summaryLine(r));
      assert.ok(r.executions > 0, `${entry.name} ran no input:\n${r.tail}`);
      if (r.outcome !== 'ok') {
        const inputs = r.artifacts.map(describeArtifact).join('\n  ');
        assert.fail(`${entry.name}: ${r.outcome} (libFuzzer -seed=${r.seed})\n${r.detail || r.tail}\ninput(s):\n  ${inputs || '(none saved)'}`);
      }
    });
  }
});
