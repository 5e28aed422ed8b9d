// Turns one multi-document YAML file into source documents, mapping every field issue to file:line.

import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { ConfigIssue } from './errors';
import { objectKey } from './objects';
import type { SourceDocument, SourceUpdate } from './store';
import { formatPath, type FieldPath } from './checker';
import { validateDocument } from './validate';

/** Alias expansions allowed per document (the yaml package's own default): bounds what a small file can become. */
const MAX_ALIAS_COUNT = 100;

/** Line of the deepest node that exists along `path` (a missing field points at its parent). */
function lineOf(doc: Document, path: FieldPath, lc: LineCounter): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lc.linePos(range[0]).line;
  }
  return 1;
}

/**
 * Parses `text` (the content of `file`) into documents for source `source`.
 * A syntax error anywhere makes the whole update `fatal`: the store then keeps the file's previous objects,
 * since which objects a broken file meant to hold cannot be known.
 */
export function parseYamlSource(source: string, file: string, text: string): SourceUpdate {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  const fatal: ConfigIssue[] = [];
  for (const d of list) {
    for (const e of d.errors) {
      fatal.push({ file, line: lc.linePos(e.pos[0]).line, field: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
    }
  }
  if (fatal.length > 0) return { source, documents: [], fatal };
  // Aliases are resolved only here: one used before its anchor, or expanding past the alias bound (a "billion
  // laughs" file), throws from toJS. Like a syntax error, that makes the whole file fatal.
  const converted: { d: Document; raw: unknown }[] = [];
  for (const d of list) {
    if (d.contents === null) continue; // empty document ("---" at the end of a file)
    try {
      converted.push({ d, raw: d.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) });
    } catch (e) {
      fatal.push({ file, line: lineOf(d, [], lc), field: '', message: `YAML aliases: ${(e as Error).message} (aliases must follow their anchor and expand to at most ${MAX_ALIAS_COUNT} nodes per document)` });
    }
  }
  if (fatal.length > 0) return { source, documents: [], fatal };
  const documents: SourceDocument[] = [];
  for (const { d, raw } of converted) {
    const line = lineOf(d, [], lc);
    if (raw === null || raw === undefined) continue;
    const r = validateDocument(raw);
    if (r.status === 'ok') {
      documents.push({ status: 'ok', stored: { object: r.object, origin: { source, file, line }, raw } });
    } else if (r.status === 'ignored') {
      documents.push({ status: 'ignored', kind: r.kind, apiVersion: r.apiVersion, file, line });
    } else {
      const key = r.kind && r.name ? objectKey(r.kind, r.namespace ?? 'default', r.name) : undefined;
      documents.push({
        status: 'invalid',
        key,
        issues: r.issues.map((i) => ({
          file,
          line: lineOf(d, i.path, lc),
          field: formatPath(i.path),
          message: i.message,
          kind: r.kind,
          name: r.name,
          key,
        })),
      });
    }
  }
  return { source, documents };
}
