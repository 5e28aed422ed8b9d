// Fuzz target config-objects: validateDocument on any JSON document, as the Kubernetes source hands objects
// over (already parsed, no YAML, no line numbers), then the rest of the pipeline for what it accepts
// (config-pipeline.ts). Seeds are the example objects as JSON; the input may also build a document of a
// known kind field by field, each field any JSON value (type confusion without writing JSON text).
//
// Invariant:
// - validateDocument never throws, whatever the JSON: it answers ok, invalid with at least one issue (each
//   with a field path and a message), or ignored for kinds it does not know;
// - accepted objects never make the model, the translation or the agent's decoding throw or NACK.

import { validateDocument } from '../../../src/controlplane/validate';
import type { SourceDocument } from '../../../src/controlplane/store';
import { FuzzInput, jsonValue } from '../input';
import { check, type FuzzTarget } from '../target';
import { throughPipeline } from './config-pipeline';

const KINDS: [string, string][] = [['v1', 'Pod'], ['v1', 'Service'], ['security.istio.io/v1', 'AuthorizationPolicy'], ['security.istio.io/v1', 'PeerAuthentication'], ['gateway.networking.k8s.io/v1', 'HTTPRoute'], ['gateway.networking.k8s.io/v1', 'GRPCRoute'], ['networking.istio.io/v1', 'DestinationRule']];
const KEYS = [
  'name', 'namespace', 'labels', 'annotations', 'selector', 'matchLabels', 'ports', 'port', 'targetPort', 'protocol', 'appProtocol',
  'clusterIP', 'podIP', 'podIPs', 'ip', 'phase', 'conditions', 'type', 'status', 'nodeName', 'serviceAccountName', 'containers',
  'containerPort', 'action', 'rules', 'from', 'to', 'when', 'source', 'operation', 'principals', 'notPrincipals', 'namespaces',
  'ipBlocks', 'notIpBlocks', 'ports', 'notPorts', 'mtls', 'mode', 'portLevelMtls', 'parentRefs', 'backendRefs', 'matches', 'path',
  'value', 'weight', 'host', 'trafficPolicy', 'creationTimestamp', 'deletionTimestamp', 'uid',
];

function built(input: FuzzInput): unknown[] {
  return Array.from({ length: 1 + input.int(3) }, () => {
    const [apiVersion, kind] = input.pick(KINDS);
    const metadata = { name: input.pick(['web', 'db', 'a', 'x-1']), namespace: input.pick(['default', 'shop', 'istio-system']), ...(jsonValue(input, KEYS, 2) as object) };
    return { apiVersion, kind, metadata, spec: jsonValue(input, KEYS, 4), status: jsonValue(input, KEYS, 3) };
  });
}

function run(data: Buffer): void {
  let docs: unknown;
  // Seeds are JSON text ('[' or '{' first); any other first byte builds documents from the input.
  if (data[0] === 0x5b || data[0] === 0x7b) {
    try {
      docs = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
  } else {
    docs = built(new FuzzInput(data.subarray(1)));
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
