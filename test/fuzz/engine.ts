// The fuzz engine's JavaScript half, run as its own process by runner.ts: instruments nodemesh's compiled code
// (dist/src) as it loads, loads one target, and hands it to libFuzzer (engine/fuzz-engine.cc). A finding (a
// throw, a broken invariant, heap kept across inputs) is saved under the artifact prefix and ends the process;
// hangs and memory over the bounds are caught by the native watchdog and libFuzzer and saved there too.
//
//   node --expose-gc dist/test/fuzz/engine.js TARGET --artifacts DIR/ [--timeout-ms N] [--retained-mb N] -- LIBFUZZER_ARGS...

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COVERAGE_GLOBAL, EQ_GLOBAL, hookRequire, Instrumenter, SWITCH_GLOBAL } from './instrument';
import type { FuzzTarget } from './target';
import { targetEntry } from './targets';

interface NativeEngine {
  registerCounters(counters: Uint8Array): void;
  traceStrCmp(a: string, b: string, id: number): void;
  runSync(fn: (data: Buffer) => number, args: string[], opts: { artifactPrefix: string; timeoutMs: number }): never;
  runAsync(fn: (data: Buffer, done: (code: number) => void) => void, args: string[], opts: { artifactPrefix: string; timeoutMs: number }): void;
  executions(): number;
  exitNow(code: number): never;
}

/** Exit code for a finding made on the JavaScript side (libFuzzer's own: 77 deadly signal, 78 out of memory; the watchdog's: 70). */
export const EXIT_FINDING = 76;

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const ENGINE_PATH = path.join(ROOT, 'test', 'fuzz', 'engine', 'build', 'fuzz-engine.node');
/** Edge counters: enough for all of dist/src and the instrumented packages, with room for late requires. */
const CAPACITY = 1 << 17;
const LATE_SLACK = 2048;
/** Strings compared against literals longer than this are not worth a dictionary entry. */
const MAX_TRACED = 64;
/** How often, in inputs, the heap kept across inputs is measured (after a full GC). */
const HEAP_CHECK_EVERY = 5000;

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function main(): void {
  const sep = process.argv.indexOf('--');
  const own = process.argv.slice(2, sep < 0 ? undefined : sep);
  const libFuzzerArgs = sep < 0 ? [] : process.argv.slice(sep + 1);
  const name = own[0];
  const artifactPrefix = arg(own, '--artifacts');
  if (!name || !artifactPrefix) throw new Error('usage: engine.js TARGET --artifacts DIR/ [--timeout-ms N] [--retained-mb N] -- LIBFUZZER_ARGS');
  const timeoutMs = Number(arg(own, '--timeout-ms') ?? 5000);
  const retainedMb = Number(arg(own, '--retained-mb') ?? 64);
  const entry = targetEntry(name);

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const native = require(ENGINE_PATH) as NativeEngine;
  const counters = new Uint8Array(CAPACITY);
  const g = globalThis as Record<string, unknown>;
  g[COVERAGE_GLOBAL] = counters;
  g[EQ_GLOBAL] = (a: unknown, b: unknown, id: number): boolean => {
    if (a === b) return true;
    if (typeof a === 'string' && typeof b === 'string' && a.length <= MAX_TRACED && b.length <= MAX_TRACED) native.traceStrCmp(a, b, id);
    return false;
  };
  g[SWITCH_GLOBAL] = (v: unknown, cases: string[], id: number): unknown => {
    if (typeof v === 'string' && v.length <= MAX_TRACED && !cases.includes(v)) for (const c of cases) native.traceStrCmp(v, c, id);
    return v;
  };

  const instrumenter = new Instrumenter(CAPACITY);
  const modulePath = path.join(__dirname, entry.dir ?? 'targets', `${name}.js`);
  const prefixes = [path.join(ROOT, 'dist', 'src') + path.sep, ...(entry.packages ?? []).map((p) => path.join(ROOT, 'node_modules', p) + path.sep)];
  if (entry.instrumentSelf) prefixes.push(modulePath);
  hookRequire(instrumenter, prefixes);
  // Loaded only now, after the hook: what the target imports from dist/src gets instrumented.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const target = (require(modulePath) as { target: FuzzTarget }).target;
  native.registerCounters(counters.subarray(0, Math.min(CAPACITY, instrumenter.edges + LATE_SLACK)));
  process.stderr.write(`fuzz: ${name}: ${instrumenter.instrumentedFiles.length} files instrumented, ${instrumenter.edges} edges\n`);

  const args = [`-max_len=${target.maxLen}`, ...libFuzzerArgs];
  if (target.dict && target.dict.length > 0) {
    const dictFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-fuzz-dict-')), `${name}.dict`);
    fs.writeFileSync(dictFile, target.dict.map((t) => `"${escapeDict(Buffer.isBuffer(t) ? t : Buffer.from(t, 'latin1'))}"`).join('\n') + '\n');
    args.push(`-dict=${dictFile}`);
  }

  let current: Buffer = Buffer.alloc(0);
  const finding = (err: unknown): never => {
    const sha = crypto.createHash('sha1').update(current).digest('hex');
    const file = `${artifactPrefix}crash-${sha}`;
    fs.writeFileSync(file, current);
    const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`fuzz: FINDING in ${name} on input ${native.executions()} (${current.length} bytes): ${what}\nfuzz: input saved to ${file}\n`);
    return native.exitNow(EXIT_FINDING);
  };

  let heapBaseline = -1;
  const heapCheck = (): void => {
    const n = native.executions();
    if (n % HEAP_CHECK_EVERY !== 0) return;
    (globalThis as { gc?: () => void }).gc?.();
    const used = process.memoryUsage().heapUsed;
    // The first measurement comes after the seed corpus ran: caches and JIT code are warm by then.
    if (heapBaseline < 0) heapBaseline = used;
    else if (used - heapBaseline > retainedMb * 1024 * 1024) {
      finding(new Error(`heap kept across inputs grew ${((used - heapBaseline) / 1048576).toFixed(1)} MiB over ${n} inputs (bound ${retainedMb} MiB): something keeps per-input state; this input is only the last one run`));
    }
  };

  const opts = { artifactPrefix, timeoutMs };
  if (target.mode === 'sync') {
    native.runSync((data) => {
      current = data;
      try {
        const r = target.run(data);
        if (r instanceof Promise) throw new Error('a sync target returned a promise: declare it async');
      } catch (e) {
        finding(e);
      }
      heapCheck();
      return 0;
    }, args, opts);
  } else {
    process.on('uncaughtException', finding);
    process.on('unhandledRejection', finding);
    native.runAsync((data, done) => {
      current = data;
      let r: void | Promise<void> = undefined;
      try {
        r = target.run(data);
      } catch (e) {
        finding(e);
      }
      Promise.resolve(r).then(
        () => {
          heapCheck();
          done(0);
        },
        (e: unknown) => finding(e),
      );
    }, args, opts);
  }
}

/** libFuzzer dictionary string syntax: printable ASCII as is, the rest as \xNN. */
function escapeDict(b: Buffer): string {
  let out = '';
  for (const c of b) out += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return out;
}

if (require.main === module) main();
