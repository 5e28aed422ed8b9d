// Runs fuzz targets, each in its own process for a bounded time, and says what each did: executions, corpus
// growth, coverage, and any finding (crash, broken invariant, hang, memory over the bound) with its input
// saved under corpus/TARGET/crashes/. The CI tier (fuzz.test.ts) and manual runs use it:
//
//   node dist/test/fuzz/runner.js [--seconds N] [--keep-corpus] [TARGET ...]
//
// Each run starts from the target's committed corpus (seeds/ and regressions/, replayed first, so every input
// that once found a bug is tried again) and writes what it discovers to a scratch directory, or with
// --keep-corpus to corpus/TARGET/found/ for a developer to minimize and commit.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ENGINE_PATH, EXIT_FINDING } from './engine';
import { TARGETS, targetEntry, type TargetEntry } from './targets';

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CORPUS_ROOT = path.join(ROOT, 'test', 'fuzz', 'corpus');

export interface FuzzOptions {
  /** libFuzzer's -max_total_time for this target. */
  seconds: number;
  /** Bound on one input's run (the native watchdog). */
  timeoutMs?: number;
  /** Peak RSS of the target's process (libFuzzer's -rss_limit_mb). */
  rssMb?: number;
  /** V8 heap limit of the target's process: an input that allocates past it is an out-of-memory finding. */
  heapMb?: number;
  /** Heap kept across inputs (after a full GC) that counts as a leak. */
  retainedMb?: number;
  /** Write discovered inputs to corpus/TARGET/found/ instead of a scratch directory. */
  keepCorpus?: boolean;
  /** Extra libFuzzer flags (e.g. -seed=N to reproduce a run, -runs=0 to replay the corpus only). */
  extra?: string[];
  /** Where corpus/TARGET/ directories are (default test/fuzz/corpus). */
  corpusRoot?: string;
}

export type Outcome = 'ok' | 'finding' | 'crash' | 'timeout' | 'out-of-memory' | 'engine-error';

export interface FuzzResult {
  target: string;
  outcome: Outcome;
  executions: number;
  seconds: number;
  /** Inputs in the corpus at the end (libFuzzer's corp:). */
  corpus: number;
  /** Coverage features libFuzzer saw (ft:) and edges covered (cov:). */
  features: number;
  edges: number;
  newUnits: number;
  seed: string;
  /** Inputs saved under crashes/ by this run. */
  artifacts: string[];
  /** What went wrong, from the run's output. */
  detail: string;
  /** The run's last output lines. */
  tail: string;
}

function lastNumber(text: string, re: RegExp): number {
  let v = 0;
  for (const m of text.matchAll(re)) v = Number(m[1]);
  return v;
}

/** The lines a run's figures are read from once it ends. */
const FINAL_STAT = /^stat::|^fuzz-engine: \d+ executions/;

function classify(code: number | null, out: string): Outcome {
  if (code === 0) return 'ok';
  if (code === EXIT_FINDING) return 'finding';
  if (/fuzz-engine: TIMEOUT/.test(out)) return 'timeout';
  if (/libFuzzer: out-of-memory|heap out of memory|Reached heap limit/.test(out)) return 'out-of-memory';
  if (/libFuzzer: deadly signal/.test(out)) return 'crash';
  return 'engine-error';
}

function detailOf(outcome: Outcome, out: string): string {
  const lines = out.split('\n');
  const pick = (re: RegExp, n: number): string => {
    const i = lines.findIndex((l) => re.test(l));
    return i < 0 ? '' : lines.slice(i, i + n).join('\n');
  };
  switch (outcome) {
    case 'ok':
      return '';
    case 'finding':
      return pick(/^fuzz: FINDING/, 12);
    case 'timeout':
      return pick(/fuzz-engine: TIMEOUT/, 1);
    case 'out-of-memory':
      return pick(/out-of-memory|heap out of memory|Reached heap limit/, 3);
    case 'crash':
      return pick(/deadly signal/, 1);
    default:
      return lines.slice(-15).join('\n');
  }
}

/** Runs one target; resolves when its process ends. */
export function fuzzTarget(name: string, opts: FuzzOptions): Promise<FuzzResult> {
  const entry = targetEntry(name);
  if (entry.placeholder) throw new Error(`fuzz target ${name} is a placeholder: ${entry.placeholder}`);
  if (!fs.existsSync(ENGINE_PATH)) throw new Error(`no fuzz engine at ${ENGINE_PATH}: run "npm run build:fuzz" (needs libclang-rt-14-dev)`);
  const dir = path.join(opts.corpusRoot ?? CORPUS_ROOT, name);
  const crashes = path.join(dir, 'crashes');
  fs.mkdirSync(crashes, { recursive: true });
  const before = new Set(fs.readdirSync(crashes));
  const scratch = opts.keepCorpus ? path.join(dir, 'found') : fs.mkdtempSync(path.join(os.tmpdir(), `nodemesh-fuzz-${name}-`));
  fs.mkdirSync(scratch, { recursive: true });
  const corpora = [scratch, ...['seeds', 'regressions'].map((d) => path.join(dir, d)).filter((d) => fs.existsSync(d))];
  const seed = String(Math.floor(Math.random() * 2 ** 31));
  const args = [
    `--max-old-space-size=${opts.heapMb ?? 512}`,
    '--expose-gc',
    path.join(__dirname, 'engine.js'),
    name,
    '--artifacts',
    crashes + path.sep,
    '--timeout-ms',
    String(opts.timeoutMs ?? 5000),
    '--retained-mb',
    String(opts.retainedMb ?? 64),
    '--',
    `-max_total_time=${Math.max(1, Math.round(opts.seconds))}`,
    `-rss_limit_mb=${opts.rssMb ?? 1536}`,
    `-seed=${seed}`,
    '-timeout=0',
    '-print_final_stats=1',
    `-artifact_prefix=${crashes}${path.sep}`,
    ...(opts.extra ?? []),
    ...corpora,
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // libFuzzer prints a line per new input: keep the start and the end, not all of it, and every final statistic
    // (a long run's recommended dictionary, printed after them, can be longer than the end kept).
    let head = '';
    let tail: string[] = [];
    const stats: string[] = [];
    /** Each stream's unfinished last line. */
    const partial = { stdout: '', stderr: '' };
    const take = (stream: keyof typeof partial) => (b: Buffer): void => {
      const s = b.toString('utf8');
      if (head.length < 8192) head += s;
      const lines = (partial[stream] + s).split('\n');
      partial[stream] = lines.pop()!;
      tail.push(...lines);
      if (tail.length > 400) {
        for (const l of tail.slice(0, -200)) if (FINAL_STAT.test(l)) stats.push(l);
        tail = tail.slice(-200);
      }
    };
    child.stdout.on('data', take('stdout'));
    child.stderr.on('data', take('stderr'));
    child.on('close', (code) => {
      if (!opts.keepCorpus) fs.rmSync(scratch, { recursive: true, force: true });
      const out = `${head}\n${stats.join('\n')}\n${[...tail, partial.stdout, partial.stderr].join('\n')}`;
      const outcome = classify(code, out);
      const artifacts = fs
        .readdirSync(crashes)
        .filter((f) => !before.has(f))
        .map((f) => path.join(crashes, f));
      resolve({
        target: name,
        outcome,
        executions: Math.max(lastNumber(out, /stat::number_of_executed_units:\s*(\d+)/g), lastNumber(out, /fuzz-engine: (\d+) executions/g)),
        seconds: (Date.now() - started) / 1000,
        corpus: lastNumber(out, /corp: (\d+)\//g),
        features: lastNumber(out, /ft: (\d+)/g),
        edges: lastNumber(out, /cov: (\d+)/g),
        newUnits: lastNumber(out, /stat::new_units_added:\s*(\d+)/g),
        seed,
        artifacts,
        detail: detailOf(outcome, out),
        tail: tail.slice(-40).join('\n'),
      });
    });
  });
}

/** What a finding's report shows of its input: base64 when small enough to paste into a regression test. */
export function describeArtifact(file: string): string {
  const b = fs.readFileSync(file);
  const shown = b.length <= 4096 ? `base64 ${b.toString('base64')}` : `${b.length} bytes (too large to print)`;
  return `${path.relative(ROOT, file)}: ${shown}`;
}

export function summaryLine(r: FuzzResult): string {
  const rate = r.seconds > 0 ? Math.round(r.executions / r.seconds) : 0;
  const found = r.outcome === 'ok' ? 'nothing found' : `${r.outcome.toUpperCase()}: ${r.detail.split('\n')[0]}`;
  return `${r.target}: ${r.executions} executions in ${r.seconds.toFixed(0)} s (${rate}/s), corpus ${r.corpus}, ${r.newUnits} new, coverage ${r.edges} edges / ${r.features} features, seed ${r.seed}: ${found}`;
}

/** Runnable targets and placeholders, for callers that list both. */
export function targetsNamed(names: string[]): { run: TargetEntry[]; placeholders: TargetEntry[] } {
  const chosen = names.length ? names.map(targetEntry) : [...TARGETS];
  return { run: chosen.filter((t) => !t.placeholder), placeholders: chosen.filter((t) => t.placeholder) };
}

async function cli(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--seconds');
  const seconds = i >= 0 ? Number(args[i + 1]) : 60;
  const names = args.filter((a, j) => !a.startsWith('--') && !(i >= 0 && j === i + 1));
  const { run, placeholders } = targetsNamed(names);
  let failed = false;
  for (const t of placeholders) console.log(`${t.name}: placeholder, not run: ${t.placeholder}`);
  for (const t of run) {
    const r = await fuzzTarget(t.name, { seconds, keepCorpus: args.includes('--keep-corpus') });
    console.log(summaryLine(r));
    if (r.outcome !== 'ok') {
      failed = true;
      console.log(r.detail || r.tail);
      for (const a of r.artifacts) console.log(`  ${describeArtifact(a)}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

if (require.main === module) void cli();
