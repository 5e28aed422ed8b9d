// Unit: the fuzz engine's coverage instrumentation keeps code valid and its lines where they were, counts
// branch edges, and reports string comparisons against literals.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import vm from 'node:vm';
import { COVERAGE_GLOBAL, EQ_GLOBAL, Instrumenter, SWITCH_GLOBAL } from '../fuzz/instrument';

const SRC = path.resolve(__dirname, '..', '..', 'src');

function jsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

test('every compiled source file stays valid JavaScript with the same lines', () => {
  const inst = new Instrumenter(1 << 20);
  const files = jsFiles(SRC);
  assert.ok(files.length > 100);
  for (const f of files) {
    const code = fs.readFileSync(f, 'utf8');
    const out = inst.instrument(code, f);
    assert.doesNotThrow(() => new vm.Script(out, { filename: f }), f);
    assert.equal(out.split('\n').length, code.split('\n').length, f);
  }
  assert.ok(inst.edges > 5000, `${inst.edges} edges`);
});

test('branches count, values and semantics stay, compares reach the hooks', () => {
  const code = `
    function f(a, s) {
      let out = [];
      if (a > 1) out.push('big'); else if (a < 0) out.push('neg');
      for (const x of [1, 2]) out.push(x > 1 ? 'x' : 'y');
      out.push(a && s, s || 'none', s ?? 'null');
      switch (s) { case 'one': out.push(1); break; case 'two': out.push(2); break; default: out.push(0); }
      if (s === 'magic') out.push('m');
      if (s !== 'magic') out.push('not-m');
      const g = (v) => v * 2;
      out.push(g(a));
      return out;
    }
    module.exports = f;`;
  const inst = new Instrumenter(256);
  const out = inst.instrument(code, 'snippet.js');
  const counters = new Uint8Array(256);
  const compares: [unknown, unknown][] = [];
  const switches: unknown[] = [];
  const sandbox = {
    module: { exports: null as unknown as (a: number, s: string | null) => unknown[] },
    [COVERAGE_GLOBAL]: counters,
    [EQ_GLOBAL]: (a: unknown, b: unknown) => (compares.push([a, b]), a === b),
    [SWITCH_GLOBAL]: (v: unknown, cases: string[]) => (switches.push([v, cases]), v),
  };
  vm.runInNewContext(out, sandbox);
  // Arrays made in the sandbox have its prototypes: compare them as JSON.
  const f = (a: number, s: string | null): unknown => JSON.parse(JSON.stringify(sandbox.module.exports(a, s)));
  assert.deepEqual(f(2, 'two'), ['big', 'y', 'x', 'two', 'two', 'two', 2, 'not-m', 4]);
  const afterFirst = counters.filter((c) => c > 0).length;
  assert.deepEqual(f(-1, null), ['neg', 'y', 'x', null, 'none', 'null', 0, 'not-m', -2]);
  assert.ok(counters.filter((c) => c > 0).length > afterFirst, 'another path covers more edges');
  assert.deepEqual(f(0, 'magic'), ['y', 'x', 0, 'magic', 'magic', 0, 'm', 0]);
  assert.deepEqual(compares.slice(0, 2), [['two', 'magic'], ['two', 'magic']]);
  assert.equal(JSON.stringify(switches[0]), '["two",["one","two"]]');
});
