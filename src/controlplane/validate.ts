// Validates one plain Kubernetes document into a typed MeshObject, collecting every issue with its field path.

import { ENROLL_ANNOTATION, wantedUnlessNamespaceSays } from '../enroll/membership';
import {
  isKnownKind,
  KNOWN_KINDS,
  type ContainerPort,
  type MeshObject,
  type NamespaceObject,
  type PodObject,
  type ServiceObject,
  type ServicePort,
} from './objects';
import { Checker, describe, isMap, LABEL, readMeta, SUBDOMAIN, type FieldIssue, type FieldPath, type Json } from './checker';
import { validateAuthorizationPolicy, validatePeerAuthentication } from './policy-validate';
import { validateRoute } from './routes/route-validate';
import { validateDestinationRule } from './traffic/destination-rule-validate';
import { validateFaultInjection } from './traffic/fault-injection';
import { serviceRetryBudget } from './traffic/service-retry-budget';

export type ValidationResult =
  | { status: 'ok'; object: MeshObject }
  | { status: 'invalid'; kind?: string; namespace?: string; name?: string; issues: FieldIssue[] }
  | { status: 'ignored'; kind: string; apiVersion: string };

/** IANA_SVC_NAME: what a container port name (and a named targetPort) must look like. */
const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

const PORT_NAME_RULE = { re: PORT_NAME, what: 'a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits, "-")' };

function validatePod(c: Checker, doc: Json): PodObject {
  const m = readMeta(c, doc, SUBDOMAIN);
  const spec = c.map(doc.spec, ['spec'], true) ?? {};
  const status = c.map(doc.status, ['status'], false) ?? {};
  const nodeName = c.string(spec.nodeName, ['spec', 'nodeName'], false, SUBDOMAIN);
  const serviceAccount =
    c.string(spec.serviceAccountName, ['spec', 'serviceAccountName'], false, SUBDOMAIN) ??
    c.string(spec.serviceAccount, ['spec', 'serviceAccount'], false, SUBDOMAIN) ??
    'default';
  const containers: PodObject['containers'] = [];
  const list = c.array(spec.containers, ['spec', 'containers'], true);
  if (Array.isArray(spec.containers) && list.length === 0) c.fail(['spec', 'containers'], 'must list at least one container');
  const portNames = new Set<string>();
  list.forEach((raw, i) => {
    const p: FieldPath = ['spec', 'containers', i];
    const ct = c.map(raw, p, true) ?? {};
    const name = c.string(ct.name, [...p, 'name'], true, LABEL) ?? '';
    const ports: ContainerPort[] = [];
    c.array(ct.ports, [...p, 'ports'], false).forEach((rp, j) => {
      const pp: FieldPath = [...p, 'ports', j];
      const port = c.map(rp, pp, true) ?? {};
      const containerPort = c.port(port.containerPort, [...pp, 'containerPort'], true);
      const pname = c.string(port.name, [...pp, 'name'], false, PORT_NAME_RULE);
      const protocol = c.string(port.protocol, [...pp, 'protocol'], false) ?? 'TCP';
      if (!PROTOCOLS.includes(protocol)) c.fail([...pp, 'protocol'], `must be one of ${PROTOCOLS.join(', ')}, got "${protocol}"`);
      if (pname !== undefined) {
        if (portNames.has(pname)) c.fail([...pp, 'name'], `port name "${pname}" is used twice in this pod`);
        portNames.add(pname);
      }
      if (containerPort !== undefined) ports.push({ name: pname, containerPort, protocol });
    });
    containers.push({ name, ports });
  });
  const podIP = c.ip(status.podIP, ['status', 'podIP']);
  const phase = c.string(status.phase, ['status', 'phase'], false);
  let ready = true;
  c.array(status.conditions, ['status', 'conditions'], false).forEach((raw, i) => {
    const cond = c.map(raw, ['status', 'conditions', i], true);
    if (cond?.type === 'Ready' && cond.status !== undefined && String(cond.status) !== 'True') ready = false;
  });
  const rawMeta = isMap(doc.metadata) ? doc.metadata : {};
  const deleting = !!rawMeta.deletionTimestamp;
  if (deleting) ready = false;
  const hostNetwork = spec.hostNetwork === true;
  if (spec.hostNetwork !== undefined && spec.hostNetwork !== null && typeof spec.hostNetwork !== 'boolean') {
    c.fail(['spec', 'hostNetwork'], `must be true or false, got ${describe(spec.hostNetwork)}`);
  }
  if (phase !== undefined && phase !== 'Running') ready = false;
  const enroll = m.annotations[ENROLL_ANNOTATION];
  if (enroll !== undefined && enroll !== 'true' && enroll !== 'false') {
    c.fail(['metadata', 'annotations', ENROLL_ANNOTATION], `must be "true" or "false", got "${enroll}"`);
  }
  return {
    kind: 'Pod',
    meta: m,
    nodeName,
    serviceAccount,
    containers,
    podIP,
    phase,
    ready,
    // What the pod alone decides (host network, opted out); its Namespace's labels decide the rest (membership.ts).
    inMesh: wantedUnlessNamespaceSays({ namespace: m.namespace, annotations: m.annotations, hostNetwork }, undefined),
    ...(hostNetwork ? { hostNetwork } : {}),
    ...(deleting ? { deleting } : {}),
  };
}

function validateNamespace(c: Checker, doc: Json): NamespaceObject {
  const m = readMeta(c, doc, LABEL);
  return { kind: 'Namespace', meta: { ...m, namespace: '' } };
}

function validateService(c: Checker, doc: Json): ServiceObject {
  const m = readMeta(c, doc, LABEL);
  const spec = c.map(doc.spec, ['spec'], true) ?? {};
  let clusterIP: string | undefined;
  if (spec.clusterIP === 'None' || spec.clusterIP === '') clusterIP = spec.clusterIP === 'None' ? 'None' : undefined;
  else clusterIP = c.ip(spec.clusterIP, ['spec', 'clusterIP']);
  const selector = spec.selector === undefined || spec.selector === null ? undefined : c.stringMap(spec.selector, ['spec', 'selector']);
  const list = c.array(spec.ports, ['spec', 'ports'], true);
  if (Array.isArray(spec.ports) && list.length === 0) c.fail(['spec', 'ports'], 'must list at least one port');
  const ports: ServicePort[] = [];
  const names = new Set<string>();
  const numbers = new Set<string>();
  list.forEach((raw, i) => {
    const p: FieldPath = ['spec', 'ports', i];
    const sp = c.map(raw, p, true) ?? {};
    const port = c.port(sp.port, [...p, 'port'], true);
    const name = c.string(sp.name, [...p, 'name'], list.length > 1, LABEL);
    const protocol = c.string(sp.protocol, [...p, 'protocol'], false) ?? 'TCP';
    if (!PROTOCOLS.includes(protocol)) c.fail([...p, 'protocol'], `must be one of ${PROTOCOLS.join(', ')}, got "${protocol}"`);
    let targetPort: number | string | undefined = port;
    if (typeof sp.targetPort === 'string') {
      targetPort = /^\d+$/.test(sp.targetPort)
        ? c.port(Number(sp.targetPort), [...p, 'targetPort'], true)
        : c.string(sp.targetPort, [...p, 'targetPort'], true, PORT_NAME_RULE);
    } else if (sp.targetPort !== undefined && sp.targetPort !== null) {
      targetPort = c.port(sp.targetPort, [...p, 'targetPort'], true);
    }
    const appProtocol = c.string(sp.appProtocol, [...p, 'appProtocol'], false);
    if (name !== undefined) {
      if (names.has(name)) c.fail([...p, 'name'], `port name "${name}" is used twice in this Service`);
      names.add(name);
    }
    if (port !== undefined) {
      const k = `${port}/${protocol}`;
      if (numbers.has(k)) c.fail([...p, 'port'], `port ${k} is listed twice in this Service`);
      numbers.add(k);
    }
    if (port !== undefined && targetPort !== undefined) ports.push({ name, port, protocol, targetPort, appProtocol });
  });
  const budget = serviceRetryBudget(c, m.annotations);
  return { kind: 'Service', meta: m, clusterIP, selector, ports, ...(budget ? { retryBudget: budget } : {}) };
}

/**
 * Validates one document. `doc` is plain data (YAML toJS or an API-server object).
 * Unknown kinds (or a known kind under a foreign apiVersion, e.g. a Knative Service) are `ignored`.
 */
export function validateDocument(doc: unknown): ValidationResult {
  const c = new Checker();
  if (!isMap(doc)) {
    c.fail([], `a Kubernetes object must be a mapping, got ${describe(doc)}`);
    return { status: 'invalid', issues: c.issues };
  }
  const kind = c.string(doc.kind, ['kind'], true);
  const apiVersion = c.string(doc.apiVersion, ['apiVersion'], true);
  if (kind === undefined || apiVersion === undefined) return { status: 'invalid', kind, issues: c.issues };
  if (!isKnownKind(kind) || !(KNOWN_KINDS[kind] as readonly string[]).includes(apiVersion)) {
    return { status: 'ignored', kind, apiVersion };
  }
  let object: MeshObject;
  if (kind === 'Pod') object = validatePod(c, doc);
  else if (kind === 'Service') object = validateService(c, doc);
  else if (kind === 'Namespace') object = validateNamespace(c, doc);
  else if (kind === 'AuthorizationPolicy') object = validateAuthorizationPolicy(c, doc, readMeta(c, doc, SUBDOMAIN));
  else if (kind === 'PeerAuthentication') object = validatePeerAuthentication(c, doc, readMeta(c, doc, SUBDOMAIN));
  else if (kind === 'HTTPRoute' || kind === 'GRPCRoute') object = validateRoute(c, doc, kind, apiVersion);
  else if (kind === 'DestinationRule') object = validateDestinationRule(c, doc, apiVersion);
  else object = validateFaultInjection(c, doc, readMeta(c, doc, SUBDOMAIN), apiVersion);
  if (c.issues.length > 0) {
    return { status: 'invalid', kind, namespace: object.meta.namespace, name: object.meta.name || undefined, issues: c.issues };
  }
  return { status: 'ok', object };
}
