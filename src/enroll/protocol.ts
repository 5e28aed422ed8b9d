// The enrollment API's wire shapes (HTTP/1.1 + JSON over the agent's unix socket) and their validation.

import { isIP } from 'node:net';
import { NodemeshError } from '../util/errors';

export class EnrollError extends NodemeshError {
  /** HTTP status the API answers with. */
  readonly status: number;
  constructor(code: string, status: number, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.status = status;
  }
}

/** POST /v1/pods body. */
export interface EnrollRequest {
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  /** e.g. /run/netns/NAME or /proc/PID/ns/net */
  netnsPath: string;
  /** cgroup v2 directory of the pod (absolute path) */
  cgroupPath: string;
  ips: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface EnrolledPod extends EnrollRequest {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  netnsCookie: string;
  enrolledAt: string;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function bad(field: string, what: string): EnrollError {
  return new EnrollError('NM_ENROLL_BAD_REQUEST', 400, `invalid enrollment request: ${field} ${what}`);
}

function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw bad(`${field}.${k}`, 'must be a string');
    out[k] = val;
  }
  return out;
}

function str(o: Record<string, unknown>, field: string, re?: RegExp): string {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0) throw bad(field, 'is required and must be a non-empty string');
  if (re && !re.test(v)) throw bad(field, `"${v}" is not a valid Kubernetes name`);
  return v;
}

/** Parses and validates a request body; throws EnrollError (400) naming the field to fix. */
export function parseEnrollRequest(body: string): EnrollRequest & { labels: Record<string, string>; annotations: Record<string, string> } {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new EnrollError('NM_ENROLL_MALFORMED_JSON', 400, `enrollment request is not valid JSON: ${(e as Error).message}`, {
      hint: 'send a JSON object with uid, name, namespace, serviceAccount, netnsPath, cgroupPath, ips',
    });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('body', 'must be a JSON object');
  const o = raw as Record<string, unknown>;
  const ips = o.ips;
  if (!Array.isArray(ips) || ips.length === 0 || !ips.every((ip) => typeof ip === 'string')) {
    throw bad('ips', 'must be a non-empty array of IP address strings');
  }
  for (const ip of ips as string[]) {
    if (isIP(ip) === 0) throw bad('ips', `contains "${ip}", which is not an IPv4 or IPv6 address`);
  }
  const netnsPath = str(o, 'netnsPath');
  const cgroupPath = str(o, 'cgroupPath');
  if (!netnsPath.startsWith('/')) throw bad('netnsPath', 'must be an absolute path');
  if (!cgroupPath.startsWith('/')) throw bad('cgroupPath', 'must be an absolute path');
  return {
    uid: str(o, 'uid'),
    name: str(o, 'name', NAME_RE),
    namespace: str(o, 'namespace', NAME_RE),
    serviceAccount: o.serviceAccount === undefined ? 'default' : str(o, 'serviceAccount', NAME_RE),
    netnsPath,
    cgroupPath,
    ips: ips as string[],
    labels: stringMap(o.labels, 'labels'),
    annotations: stringMap(o.annotations, 'annotations'),
  };
}

