// Coverage instrumentation for fuzzing: rewrites compiled JavaScript as it is required so that every branch
// edge increments one byte of a counter array libFuzzer reads, and string equality against a literal reports
// the two strings to libFuzzer's table of recent compares.
//
// Edits are spliced into the original text without adding a line, so stack traces and the compiled files'
// source maps still point at the right TypeScript lines.

import fs from 'node:fs';
import Module from 'node:module';
import ts from 'typescript';

/** Globals the instrumented code calls; installed by the engine before any instrumented module loads. */
export const COVERAGE_GLOBAL = '__nmFuzzCov';
export const EQ_GLOBAL = '__nmFuzzEq';
export const SWITCH_GLOBAL = '__nmFuzzSwitch';

interface Edit {
  start: number;
  end: number;
  text: string;
  /** Order among edits at one position: closers of inner wrappers before closers of outer ones, then openers outer first. */
  rank: number;
}

export class Instrumenter {
  private nextEdge = 0;
  private nextCmp = 1;
  private readonly files: string[] = [];

  /** `capacity`: the counter array's length; edge ids wrap at it. */
  constructor(readonly capacity: number) {}

  /** Edges assigned so far (the counters libFuzzer should watch). */
  get edges(): number {
    return Math.min(this.nextEdge, this.capacity);
  }

  get instrumentedFiles(): readonly string[] {
    return this.files;
  }

  /** Returns `code` with counters and compare hooks spliced in. */
  instrument(code: string, file: string): string {
    const sf = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
    const edits: Edit[] = [];
    let seq = 0;
    const hit = (): string => `${COVERAGE_GLOBAL}[${this.nextEdge++ % this.capacity}]++`;
    const wrapExpr = (e: ts.Node): void => {
      const rank = seq++;
      edits.push({ start: e.getStart(sf), end: e.getStart(sf), text: `(${hit()}, `, rank: 1e9 + rank });
      edits.push({ start: e.end, end: e.end, text: ')', rank: -rank });
    };
    const wrapStmt = (s: ts.Statement): void => {
      if (ts.isBlock(s)) {
        prependToBlock(s);
        return;
      }
      const rank = seq++;
      edits.push({ start: s.getStart(sf), end: s.getStart(sf), text: `{${hit()};`, rank: 1e9 + rank });
      edits.push({ start: s.end, end: s.end, text: '}', rank: -rank });
    };
    const prependToBlock = (b: ts.Block | ts.ModuleBlock): void => {
      // After a directive prologue ("use strict"), which must stay first to count.
      let at = b.getStart(sf) + 1;
      for (const st of b.statements) {
        if (ts.isExpressionStatement(st) && ts.isStringLiteral(st.expression)) at = st.end;
        else break;
      }
      edits.push({ start: at, end: at, text: `${hit()};`, rank: 1e9 + seq++ });
    };
    const isStringLit = (e: ts.Expression): boolean => ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e);

    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const body = node.body as ts.Node;
        if (ts.isBlock(body)) prependToBlock(body);
        else wrapExpr(body);
      } else if (ts.isIfStatement(node)) {
        // The added `else` goes after the then-branch's own closer and before any closer of a wrapper around
        // this whole statement: its rank sits between theirs.
        const rank = seq++;
        wrapStmt(node.thenStatement);
        if (node.elseStatement) {
          if (!ts.isIfStatement(node.elseStatement)) wrapStmt(node.elseStatement);
        } else {
          edits.push({ start: node.end, end: node.end, text: `else{${hit()};}`, rank: -rank });
        }
      } else if (ts.isConditionalExpression(node)) {
        wrapExpr(node.whenTrue);
        wrapExpr(node.whenFalse);
      } else if (ts.isBinaryExpression(node)) {
        const op = node.operatorToken.kind;
        if (
          op === ts.SyntaxKind.AmpersandAmpersandToken ||
          op === ts.SyntaxKind.BarBarToken ||
          op === ts.SyntaxKind.QuestionQuestionToken ||
          op === ts.SyntaxKind.AmpersandAmpersandEqualsToken ||
          op === ts.SyntaxKind.BarBarEqualsToken ||
          op === ts.SyntaxKind.QuestionQuestionEqualsToken
        ) {
          wrapExpr(node.right);
        } else if (
          (op === ts.SyntaxKind.EqualsEqualsEqualsToken || op === ts.SyntaxKind.ExclamationEqualsEqualsToken) &&
          (isStringLit(node.left) || isStringLit(node.right)) &&
          !ts.isTypeOfExpression(node.left) &&
          !ts.isTypeOfExpression(node.right)
        ) {
          const rank = seq++;
          const neg = op === ts.SyntaxKind.ExclamationEqualsEqualsToken ? '!' : '';
          edits.push({ start: node.getStart(sf), end: node.getStart(sf), text: `${neg}${EQ_GLOBAL}(`, rank: 1e9 + rank });
          edits.push({ start: node.operatorToken.getStart(sf), end: node.operatorToken.end, text: ',', rank: 0 });
          edits.push({ start: node.end, end: node.end, text: `, ${this.nextCmp++})`, rank: -rank });
        }
      } else if (
        ts.isForStatement(node) ||
        ts.isForInStatement(node) ||
        ts.isForOfStatement(node) ||
        ts.isWhileStatement(node) ||
        ts.isDoStatement(node)
      ) {
        wrapStmt(node.statement);
      } else if (ts.isCaseClause(node) || ts.isDefaultClause(node)) {
        const at = node.getChildren(sf).find((c) => c.kind === ts.SyntaxKind.ColonToken)!.end;
        edits.push({ start: at, end: at, text: `${hit()};`, rank: 1e9 + seq++ });
      } else if (ts.isCatchClause(node)) {
        prependToBlock(node.block);
      } else if (ts.isSwitchStatement(node)) {
        const literals = node.caseBlock.clauses.flatMap((c) => (ts.isCaseClause(c) && isStringLit(c.expression) ? [c.expression.getText(sf)] : []));
        if (literals.length > 0) {
          const rank = seq++;
          edits.push({ start: node.expression.getStart(sf), end: node.expression.getStart(sf), text: `${SWITCH_GLOBAL}(`, rank: 1e9 + rank });
          edits.push({ start: node.expression.end, end: node.expression.end, text: `, [${literals.join(',')}], ${this.nextCmp++})`, rank: -rank });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    this.files.push(file);
    return splice(code, edits);
  }
}

function splice(code: string, edits: Edit[]): string {
  edits.sort((a, b) => a.start - b.start || a.rank - b.rank);
  let out = '';
  let at = 0;
  for (const e of edits) {
    out += code.slice(at, e.start) + e.text;
    at = Math.max(at, e.end);
  }
  return out + code.slice(at);
}

type Loader = (module: NodeModule & { _compile(code: string, file: string): void }, filename: string) => void;

/**
 * Instruments, from now on, every required `.js` file whose absolute path starts with one of `prefixes`.
 * Modules already loaded keep their code: install this before requiring what is to be measured.
 */
export function hookRequire(instrumenter: Instrumenter, prefixes: readonly string[]): void {
  const extensions = (Module as unknown as { _extensions: Record<string, Loader> })._extensions;
  const original = extensions['.js']!;
  extensions['.js'] = (module, filename) => {
    if (!prefixes.some((p) => filename.startsWith(p))) return original(module, filename);
    module._compile(instrumenter.instrument(fs.readFileSync(filename, 'utf8'), filename), filename);
  };
}
