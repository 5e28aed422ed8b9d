// Parses a lab manifest (multi-document Kubernetes YAML) into validated pods, with file:line errors.

import fs from 'node:fs';
import { isIPv4 } from 'node:net';
import { Document, isCollection, isMap, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { LabError, LabManifestError, type ManifestIssue } from './errors';
import { ENROLL_ANNOTATION } from '../enroll/membership';

export interface SourceLoc {
  file: string;
  line: number;
  col: number;
}

export interface ContainerSpec {
  name: string;
  /** command + args, already joined: the lab has no images, so there is no entrypoint to merge. */
  argv: string[];
  env: Record<string, string>;
}

export interface PodSpec {
  name: string;
  namespace: string;
  uid?: string;
  nodeName: string;
  serviceAccount: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  containers: ContainerSpec[];
  /** status.podIP when the manifest pins it. */
  podIP?: string;
  loc: SourceLoc;
  podIPLoc?: SourceLoc;
}

/** A non-Pod object (Service, HTTPRoute, ...): kept verbatim for later consumers. */
export interface OtherObject {
  kind: string;
  name: string;
  namespace: string;
  object: Record<string, unknown>;
  loc: SourceLoc;
}

export interface LabManifest {
  file: string;
  pods: PodSpec[];
  others: OtherObject[];
}


const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

type Path = (string | number)[];

function fieldName(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s || '(document)';
}

/** Validates one document; `issue` records a problem located at the deepest existing node of `path`. */
class DocReader {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly file: string,
    private readonly lc: LineCounter,
    readonly issues: ManifestIssue[],
  ) {}

  loc(path: Path): SourceLoc {
    // Walk down as far as the document goes, so a missing field points at its parent.
    let node: YamlNode | null = this.doc.contents;
    for (let i = path.length; i >= 0; i--) {
      const n = this.doc.getIn(path.slice(0, i), true) as YamlNode | undefined;
      if (n && typeof n === 'object' && 'range' in n && n.range) {
        node = n;
        break;
      }
    }
    const offset = node?.range?.[0] ?? 0;
    const pos = this.lc.linePos(offset);
    return { file: this.file, line: pos.line, col: pos.col };
  }

  issue(path: Path, message: string): void {
    const l = this.loc(path);
    this.issues.push({ file: l.file, line: l.line, col: l.col, field: fieldName(path), message });
  }

  /** Plain JS value at path (getIn hands back collection nodes, not their values). */
  get(path: Path): unknown {
    const v = this.doc.getIn(path);
    return isCollection(v) ? (v.toJSON() as unknown) : v;
  }

  has(path: Path): boolean {
    return this.doc.hasIn(path);
  }

  /** A string field; `undefined` when absent and not required. */
  str(path: Path, opts: { required?: boolean; re?: RegExp; what?: string } = {}): string | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) {
      if (opts.required) this.issue(path, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.issue(path, `must be a string, got ${typeof v} ${JSON.stringify(v)} (quote it)`);
      return undefined;
    }
    if (opts.re && !opts.re.test(v)) {
      this.issue(path, `"${v}" is not a valid ${opts.what ?? 'value'}`);
      return undefined;
    }
    return v;
  }

  /** A map of string to string (labels, annotations): YAML booleans/numbers must be quoted. */
  stringMap(path: Path): Record<string, string> {
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) return {};
    if (!isMap(node)) {
      this.issue(path, 'must be a map of strings');
      return {};
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.get(path) as Record<string, unknown>)) {
      if (typeof v !== 'string') {
        this.issue([...path, k], `must be a string, got ${JSON.stringify(v)} (quote it: "${String(v)}")`);
        continue;
      }
      out[k] = v;
    }
    return out;
  }

  stringList(path: Path): string[] | undefined {
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) return undefined;
    if (!isSeq(node)) {
      this.issue(path, 'must be a list of strings');
      return undefined;
    }
    const out: string[] = [];
    (this.get(path) as unknown[]).forEach((v, i) => {
      if (typeof v === 'string') out.push(v);
      else if (typeof v === 'number' || typeof v === 'boolean') out.push(String(v));
      else this.issue([...path, i], 'must be a string');
    });
    return out;
  }

  seqLength(path: Path): number | undefined {
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) return undefined;
    if (!isSeq(node)) return -1;
    return node.items.length;
  }
}

function readContainer(r: DocReader, base: Path, seen: Set<string>): ContainerSpec | undefined {
  const name = r.str([...base, 'name'], { required: true, re: DNS_LABEL, what: 'container name' });
  if (name !== undefined) {
    if (seen.has(name)) r.issue([...base, 'name'], `duplicate container name "${name}"`);
    seen.add(name);
  }
  const before = r.issues.length;
  const command = r.stringList([...base, 'command']) ?? [];
  const args = r.stringList([...base, 'args']) ?? [];
  const argv = [...command, ...args];
  // A malformed command was already reported; only an absent or empty one still needs saying.
  if (argv.length === 0 && r.issues.length === before) r.issue([...base, 'command'], 'is required: the lab has no images, so give command (and optionally args)');
  const env: Record<string, string> = {};
  const envLen = r.seqLength([...base, 'env']);
  if (envLen === -1) r.issue([...base, 'env'], 'must be a list of {name, value}');
  for (let i = 0; i < (envLen ?? 0); i++) {
    const p = [...base, 'env', i];
    if (r.has([...p, 'valueFrom'])) {
      r.issue([...p, 'valueFrom'], 'is not supported in the lab; use value');
      continue;
    }
    const n = r.str([...p, 'name'], { required: true, re: ENV_NAME, what: 'environment variable name' });
    const raw = r.get([...p, 'value']);
    const v = raw === undefined || raw === null ? '' : typeof raw === 'object' ? undefined : String(raw);
    if (v === undefined) r.issue([...p, 'value'], 'must be a string');
    if (n !== undefined && v !== undefined) env[n] = v;
  }
  if (name === undefined || argv.length === 0) return undefined;
  return { name, argv, env };
}

function readPod(r: DocReader, docLoc: SourceLoc): PodSpec | undefined {
  const before = r.issues.length;
  const apiVersion = r.str(['apiVersion'], { required: true });
  if (apiVersion !== undefined && apiVersion !== 'v1') r.issue(['apiVersion'], `must be "v1" for a Pod, got "${apiVersion}"`);
  const name = r.str(['metadata', 'name'], { required: true, re: DNS_SUBDOMAIN, what: 'pod name (lowercase DNS name)' });
  const namespace = r.str(['metadata', 'namespace'], { re: DNS_LABEL, what: 'namespace (lowercase DNS label)' }) ?? 'default';
  const uid = r.str(['metadata', 'uid']);
  const labels = r.stringMap(['metadata', 'labels']);
  const annotations = r.stringMap(['metadata', 'annotations']);
  const nodeName = r.str(['spec', 'nodeName'], { re: DNS_SUBDOMAIN, what: 'node name (lowercase DNS name)' });
  if (!r.has(['spec', 'nodeName'])) {
    r.issue(['spec', 'nodeName'], `is required: pod "${name ?? '?'}" must say which lab node it runs on (the lab has no scheduler)`);
  }
  const serviceAccount =
    r.str(['spec', 'serviceAccountName'], { re: DNS_SUBDOMAIN, what: 'service account name' }) ?? 'default';
  const enroll = annotations[ENROLL_ANNOTATION];
  if (enroll !== undefined && enroll !== 'true' && enroll !== 'false') {
    r.issue(['metadata', 'annotations', ENROLL_ANNOTATION], `must be "true" or "false", got "${enroll}"`);
  }
  const n = r.seqLength(['spec', 'containers']);
  const containers: ContainerSpec[] = [];
  if (n === undefined || n === 0) r.issue(['spec', 'containers'], 'is required: give at least one container with a command');
  else if (n === -1) r.issue(['spec', 'containers'], 'must be a list of containers');
  const seen = new Set<string>();
  for (let i = 0; i < Math.max(n ?? 0, 0); i++) {
    const c = readContainer(r, ['spec', 'containers', i], seen);
    if (c) containers.push(c);
  }
  let podIP: string | undefined;
  let podIPLoc: SourceLoc | undefined;
  const ip = r.str(['status', 'podIP']);
  if (ip !== undefined) {
    if (!isIPv4(ip)) r.issue(['status', 'podIP'], `"${ip}" is not an IPv4 address (the lab is IPv4 only)`);
    else {
      podIP = ip;
      podIPLoc = r.loc(['status', 'podIP']);
    }
  }
  const after = r.issues.length;
  if (after !== before || name === undefined || nodeName === undefined) return undefined;
  return { name, namespace, uid, nodeName, serviceAccount, labels, annotations, containers, podIP, loc: docLoc, podIPLoc };
}

/** Parses manifest text. Throws LabManifestError listing every issue (file:line:col: field: what). */
export function parseManifest(text: string, file: string): LabManifest {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const issues: ManifestIssue[] = [];
  const pods: PodSpec[] = [];
  const others: OtherObject[] = [];
  // parseAllDocuments returns an EmptyStream (no documents) for empty input.
  const list = Array.isArray(docs) ? docs : [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
        issues.push({ file, line: pos.line, col: pos.col, field: '(yaml)', message: e.message.split('\n')[0] ?? e.code });
      }
      continue;
    }
    const contents = doc.contents;
    if (contents === null || (contents as { value?: unknown }).value === null) continue; // empty document
    const r = new DocReader(doc, file, lc, issues);
    const docLoc = r.loc([]);
    if (!isMap(contents)) {
      r.issue([], 'each document must be a Kubernetes object (a map with apiVersion, kind, metadata)');
      continue;
    }
    const kind = r.str(['kind'], { required: true });
    if (kind === undefined) continue;
    if (kind === 'Pod') {
      const pod = readPod(r, docLoc);
      if (pod) pods.push(pod);
    } else {
      const name = r.str(['metadata', 'name'], { required: true });
      const namespace = r.str(['metadata', 'namespace']) ?? 'default';
      if (name !== undefined) {
        others.push({ kind, name, namespace, object: doc.toJS() as Record<string, unknown>, loc: docLoc });
      }
    }
  }
  // Cross-document checks, reported at the later duplicate.
  const byKey = new Map<string, PodSpec>();
  const byIP = new Map<string, PodSpec>();
  for (const p of pods) {
    const key = `${p.namespace}/${p.name}`;
    const prev = byKey.get(key);
    if (prev) issues.push({ ...p.loc, field: 'metadata.name', message: `duplicate pod ${key} (first defined at line ${prev.loc.line})` });
    byKey.set(key, p);
    if (p.podIP && p.podIPLoc) {
      const other = byIP.get(p.podIP);
      if (other) {
        issues.push({ ...p.podIPLoc, field: 'status.podIP', message: `${p.podIP} is already used by pod ${other.namespace}/${other.name}` });
      }
      byIP.set(p.podIP, p);
    }
  }
  if (issues.length === 0 && pods.length === 0) {
    issues.push({ file, line: 1, col: 1, field: 'kind', message: 'the manifest has no Pod objects: nothing to run' });
  }
  if (issues.length > 0) throw new LabManifestError(issues);
  return { file, pods, others };
}

/** Reads and parses a manifest file. */
export function loadManifest(file: string): LabManifest {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new LabError('NM_LAB_MANIFEST_READ', `cannot read manifest ${file}: ${(e as Error).message}`, {
      hint: 'check the path given with -f',
      cause: e,
    });
  }
  return parseManifest(text, file);
}

/** Labels of the manifest's Namespace objects, by name: with its pods' annotations they decide enrollment. */
export function namespaceLabels(m: LabManifest): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const o of m.others) {
    if (o.kind !== 'Namespace') continue;
    const labels = (o.object.metadata as { labels?: unknown } | undefined)?.labels;
    out.set(o.name, labels && typeof labels === 'object' ? (labels as Record<string, string>) : {});
  }
  return out;
}
