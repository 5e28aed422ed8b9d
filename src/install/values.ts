// Install values: the defaults, a values file (YAML), `--set path=value` and flags merged over them, validated
// with a message that names the field to fix.

import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { NodemeshError } from '../util/errors';
import { version } from '../../package.json';

export class InstallError extends NodemeshError {
  constructor(code: 'NM_INSTALL_VALUES' | 'NM_INSTALL_VALUES_FILE', message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}

export interface Resources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface InstallValues {
  namespace: string;
  /** One image for both roles unless overridden (the binary is the same). */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  trustDomain: string;
  logLevel: string;
  controlPlane: {
    image?: string;
    replicas: number;
    resources: Resources;
    tolerations: Toleration[];
    /** Longest workload certificate lifetime the CA grants. */
    maxCertTtl: string;
    /**
     * Secret holding the CA (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem, as Istio's `cacerts`).
     * Created with a generated root on first start when absent; an operator may create it beforehand
     * with an intermediate.
     */
    caSecret: string;
  };
  agent: {
    image?: string;
    resources: Resources;
    /** Default: tolerate every taint, so tainted nodes are meshed too. */
    tolerations: Toleration[];
    /** Threads that serve pod traffic (0: one per CPU the limit allows). */
    concurrency: number;
    drainSeconds: number;
    cniBinDir: string;
    cniConfDir: string;
  };
}

export function defaultValues(): InstallValues {
  return {
    namespace: 'nodemesh-system',
    image: `nodemesh/nodemesh:${version}`,
    imagePullPolicy: 'IfNotPresent',
    trustDomain: 'cluster.local',
    logLevel: 'info',
    controlPlane: {
      replicas: 2,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
      tolerations: [],
      maxCertTtl: '7d',
      caSecret: 'cacerts',
    },
    agent: {
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
      tolerations: [{ operator: 'Exists' }],
      concurrency: 1,
      drainSeconds: 20,
      cniBinDir: '/opt/cni/bin',
      cniConfDir: '/etc/cni/net.d',
    },
  };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/;
const DURATION = /^\d+(s|m|h|d)$/;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, anything else (arrays included) replaces. Unknown keys are refused. */
function merge(into: Record<string, unknown>, from: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(from)) {
    const field = where ? `${where}.${k}` : k;
    if (!(k in into) && !['image'].includes(k)) throw new InstallError('NM_INSTALL_VALUES', `unknown value ${field}`, { hint: 'run "nodemesh install --show-values" for every value and its default' });
    const cur = into[k];
    if (isObject(cur) && isObject(v)) merge(cur, v, field);
    else into[k] = v;
  }
}

function fail(field: string, what: string): never {
  throw new InstallError('NM_INSTALL_VALUES', `value ${field} ${what}`);
}

function checkResources(r: Resources, field: string): void {
  if (!isObject(r)) fail(field, 'must be an object with requests and/or limits');
  for (const part of ['requests', 'limits'] as const) {
    const p = r[part];
    if (p === undefined) continue;
    if (!isObject(p)) fail(`${field}.${part}`, 'must be an object with cpu and/or memory');
    for (const [k, v] of Object.entries(p)) {
      if (k !== 'cpu' && k !== 'memory') fail(`${field}.${part}.${k}`, 'is not cpu or memory');
      if (typeof v !== 'string' || !QUANTITY.test(v)) fail(`${field}.${part}.${k}`, `must be a Kubernetes quantity such as 100m or 128Mi, not ${JSON.stringify(v)}`);
    }
  }
}

function checkTolerations(t: unknown, field: string): void {
  if (!Array.isArray(t)) fail(field, 'must be a list of tolerations');
  t.forEach((x: unknown, i) => {
    if (!isObject(x)) fail(`${field}[${i}]`, 'must be an object');
    if (x.operator !== undefined && x.operator !== 'Exists' && x.operator !== 'Equal') fail(`${field}[${i}].operator`, 'must be Exists or Equal');
    if (x.effect !== undefined && !['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(String(x.effect))) {
      fail(`${field}[${i}].effect`, 'must be NoSchedule, PreferNoSchedule or NoExecute');
    }
    if (x.operator === 'Exists' && x.value !== undefined) fail(`${field}[${i}].value`, 'must be empty with operator Exists');
  });
}

/** Throws InstallError naming the first bad field. */
export function validateValues(v: InstallValues): InstallValues {
  if (!DNS_LABEL.test(v.namespace)) fail('namespace', `must be a DNS label, not ${JSON.stringify(v.namespace)}`);
  for (const [field, img] of [['image', v.image], ['controlPlane.image', v.controlPlane.image], ['agent.image', v.agent.image]] as const) {
    if (img !== undefined && (typeof img !== 'string' || img.length === 0 || /\s/.test(img))) fail(field, 'must be an image reference such as registry/nodemesh:0.1.0');
  }
  if (!['Always', 'IfNotPresent', 'Never'].includes(v.imagePullPolicy)) fail('imagePullPolicy', 'must be Always, IfNotPresent or Never');
  if (typeof v.trustDomain !== 'string' || !DNS_NAME.test(v.trustDomain)) fail('trustDomain', `must be a DNS name such as cluster.local, not ${JSON.stringify(v.trustDomain)}`);
  if (!LEVELS.includes(v.logLevel)) fail('logLevel', `must be one of ${LEVELS.join(', ')}`);
  if (!Number.isInteger(v.controlPlane.replicas) || v.controlPlane.replicas < 1) fail('controlPlane.replicas', 'must be an integer of at least 1');
  if (typeof v.controlPlane.maxCertTtl !== 'string' || !DURATION.test(v.controlPlane.maxCertTtl)) fail('controlPlane.maxCertTtl', 'must be a duration such as 24h or 7d');
  if (!DNS_NAME.test(v.controlPlane.caSecret)) fail('controlPlane.caSecret', 'must be a Secret name');
  checkResources(v.controlPlane.resources, 'controlPlane.resources');
  checkResources(v.agent.resources, 'agent.resources');
  checkTolerations(v.controlPlane.tolerations, 'controlPlane.tolerations');
  checkTolerations(v.agent.tolerations, 'agent.tolerations');
  if (!Number.isInteger(v.agent.concurrency) || v.agent.concurrency < 0) fail('agent.concurrency', 'must be an integer of at least 0');
  if (!Number.isInteger(v.agent.drainSeconds) || v.agent.drainSeconds < 0) fail('agent.drainSeconds', 'must be an integer of at least 0');
  for (const f of ['cniBinDir', 'cniConfDir'] as const) if (typeof v.agent[f] !== 'string' || !v.agent[f].startsWith('/')) fail(`agent.${f}`, 'must be an absolute path');
  return v;
}

/** `a.b.c=value`: numbers and true/false become such, `[...]`/`{...}` parse as YAML flow, anything else is a string. */
export function parseSet(expr: string): Record<string, unknown> {
  const eq = expr.indexOf('=');
  if (eq <= 0) throw new InstallError('NM_INSTALL_VALUES', `--set ${expr}: expected PATH=VALUE, e.g. --set agent.concurrency=2`);
  const keys = expr.slice(0, eq).split('.');
  const raw = expr.slice(eq + 1);
  let value: unknown = raw;
  if (/^-?\d+$/.test(raw)) value = Number(raw);
  else if (raw === 'true' || raw === 'false') value = raw === 'true';
  else if (/^[[{]/.test(raw)) {
    try {
      value = parseYaml(raw);
    } catch (err) {
      throw new InstallError('NM_INSTALL_VALUES', `--set ${expr}: the value is not valid YAML: ${(err as Error).message}`);
    }
  }
  const out: Record<string, unknown> = {};
  let cur = out;
  keys.forEach((k, i) => {
    if (i === keys.length - 1) cur[k] = value;
    else cur = (cur[k] = {}) as Record<string, unknown>;
  });
  return out;
}

export function loadValuesFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InstallError('NM_INSTALL_VALUES_FILE', `cannot read the values file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new InstallError('NM_INSTALL_VALUES_FILE', `the values file ${file} is not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isObject(parsed)) throw new InstallError('NM_INSTALL_VALUES_FILE', `the values file ${file} must be a YAML mapping`);
  return parsed;
}

/** Defaults, then each layer in order (values file, --set, flags), validated. */
export function resolveValues(...layers: Record<string, unknown>[]): InstallValues {
  const v = defaultValues() as unknown as Record<string, unknown>;
  for (const l of layers) merge(v, l, '');
  return validateValues(v as unknown as InstallValues);
}
