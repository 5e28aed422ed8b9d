// Fuzz target config-yaml: the control plane's config files, parseYamlSource on any text (YAML syntax, the
// yaml package's limits, then validateDocument and the kind validators: Pod, Service, policies, routes), and
// what an accepted file goes on to: store, model, xDS, the agent's decoding (config-pipeline.ts).
// Seeds are the repository's example and lab YAML.
//
// Invariant:
// - parseYamlSource never throws: whatever is wrong with a file comes back as issues, each with a line inside
//   the file (1 to its line count) and a message;
// - a file with fatal issues yields no documents;
// - an accepted object validates again to ok from its own raw form (validation is a function of the data);
// - accepted objects never make the model, the translation or the agent's decoding throw or NACK.

import { parseYamlSource } from '../../../src/controlplane/yaml-parse';
import { validateDocument } from '../../../src/controlplane/validate';
import type { ConfigIssue } from '../../../src/controlplane/errors';
import { check, type FuzzTarget } from '../target';
import { throughPipeline } from './config-pipeline';

function run(data: Buffer): void {
  const text = data.toString('utf8');
  const lines = text.split('\n').length;
  const update = parseYamlSource('fuzz', 'fuzz.yaml', text);
  const issueOk = (i: ConfigIssue): boolean => Number.isInteger(i.line) && i.line >= 1 && i.line <= lines && i.message.length > 0;
  if (update.fatal && update.fatal.length > 0) {
    check(update.documents.length === 0, 'a file with fatal issues still yielded documents');
    for (const i of update.fatal) check(issueOk(i), () => `fatal issue at line ${i.line} of ${lines}: ${i.message}`);
    return;
  }
  for (const d of update.documents) {
    if (d.status === 'invalid') for (const i of d.issues) check(issueOk(i), () => `issue at line ${i.line} of ${lines}: ${i.message}`);
    if (d.status === 'ok') check(validateDocument(d.stored.raw).status === 'ok', 'an accepted object does not validate again');
  }
  throughPipeline(update);
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 8192,
  dict: [
    'apiVersion: v1\n', 'kind: Pod\n', 'kind: Service\n', 'kind: AuthorizationPolicy\n', 'kind: PeerAuthentication\n',
    'apiVersion: security.istio.io/v1\n', 'metadata:\n', 'spec:\n', 'name: ', 'namespace: ', 'labels:', 'selector:',
    'ports:', 'port: ', 'targetPort: ', 'clusterIP: ', 'podIP: ', 'status:', 'nodeName: ', 'containers:', 'containerPort: ',
    'rules:', 'from:', 'to:', 'source:', 'principals:', 'namespaces:', 'ipBlocks:', 'notPorts:', 'action: DENY', 'mtls:', 'mode: STRICT',
    '---\n', '&a ', '*a', '<<: ', '!!str ', '- ', '{', '}', '[', ']',
  ],
  run,
};
