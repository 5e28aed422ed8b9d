// Fuzz target config-objects: validateDocument on any JSON document, as the Kubernetes source hands objects
// over (already parsed, no YAML, no line numbers), then the rest of the pipeline for what it accepts
// (config-pipeline.ts). Seeds are the example objects as JSON.
//
// Invariant:
// - validateDocument never throws, whatever the JSON: it answers ok, invalid with at least one issue (each
//   with a field path and a message), or ignored for kinds it does not know;
// - accepted objects never make the model, the translation or the agent's decoding throw or NACK.

import { validateDocument } from '../../../src/controlplane/validate';
import type { SourceDocument } from '../../../src/controlplane/store';
import { check, type FuzzTarget } from '../target';
import { throughPipeline } from './config-pipeline';

function run(data: Buffer): void {
  let docs: unknown;
  try {
    docs = JSON.parse(data.toString('utf8'));
  } catch {
    return;
  }
  const list = Array.isArray(docs) ? docs : [docs];
  const documents: SourceDocument[] = [];
  list.forEach((doc, line) => {
    const r = validateDocument(doc);
    if (r.status === 'invalid') {
      check(r.issues.length > 0, 'invalid without an issue');
      for (const i of r.issues) check(Array.isArray(i.path) && i.message.length > 0, 'an issue without a path or message');
    } else if (r.status === 'ok') {
      documents.push({ status: 'ok', stored: { object: r.object, origin: { source: 'fuzz', file: 'fuzz.json', line: line + 1 }, raw: doc } });
    }
  });
  throughPipeline({ source: 'fuzz', documents });
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 8192,
  dict: [
    '"apiVersion"', '"kind"', '"metadata"', '"spec"', '"status"', '"name"', '"namespace"', '"labels"', '"annotations"', '"v1"',
    '"Pod"', '"Service"', '"AuthorizationPolicy"', '"PeerAuthentication"', '"security.istio.io/v1"', '"selector"', '"ports"',
    '"port"', '"targetPort"', '"clusterIP"', '"podIP"', '"nodeName"', '"containers"', '"containerPort"', '"rules"', '"from"',
    '"to"', '"source"', '"principals"', '"namespaces"', '"ipBlocks"', '"notPorts"', '"action"', '"mtls"', '"mode"', '"__proto__"',
    'null', 'true', '[]', '{}',
  ],
  run,
};
