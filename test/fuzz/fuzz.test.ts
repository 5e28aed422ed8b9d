// The fuzz tier: every target (targets.ts) under libFuzzer for its share of a bounded budget, one test each.
// A target fails on any finding (a crash, a broken invariant, an input over the time bound, memory over the
// bound), with the input saved under corpus/TARGET/crashes/ and printed as base64. Every run first replays the
// target's committed seeds and regressions.
//
//   NODEMESH_FUZZ_SECONDS   the whole tier's fuzzing time, shared evenly (default 90; run-tests.js --fuzz-seconds)
//   NODEMESH_FUZZ_TARGETS   a comma-separated subset of targets
//   NODEMESH_FUZZ_SUMMARY   a file to write the per-target results to as JSON (run-tests.js prints it as a table)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { describeArtifact, fuzzTarget, summaryLine, targetsNamed, type FuzzResult } from './runner';

const DEFAULT_SECONDS = 90;
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

  it('the engine finds a planted bug through compare feedback, and a planted hang in async mode', async (t) => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-fuzz-selftest-'));
    try {
      const bug = await fuzzTarget('planted-bug', { seconds: 30, corpusRoot: scratch });
      t.diagnostic(summaryLine(bug));
      assert.equal(bug.outcome, 'finding', bug.tail);
      assert.equal(bug.artifacts.length, 1);
      assert.equal(fs.readFileSync(bug.artifacts[0]!).toString('latin1', 0, 6), 'nm-bug');
      const hang = await fuzzTarget('planted-hang', { seconds: 30, timeoutMs: 1000, corpusRoot: scratch });
      t.diagnostic(summaryLine(hang));
      assert.equal(hang.outcome, 'timeout', hang.tail);
      assert.equal(fs.readFileSync(hang.artifacts[0]!)[0], 0x48);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
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
