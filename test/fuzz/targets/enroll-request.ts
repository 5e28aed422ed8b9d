// Fuzz target enroll-request: the enrollment API's request decoding on the agent's unix socket:
// parseEnrollRequest (POST /v1/pods) and parseCniEvent (POST /v1/cni, what nodemesh-cni sends), on any body
// text, or on a body built field by field where each field may be any JSON value.
//
// Invariant:
// - both throw nothing but EnrollError, always with HTTP status 400 and a stable NM_ENROLL_* code;
// - a CNI event accepted has a command of ADD, DEL or CHECK, string fields, and IP addresses only (at least
//   one for ADD);
// - a pod accepted has Kubernetes names (DNS subdomain form, at most 253 characters) for name, namespace
//   and service account, a non-empty uid, absolute netns and cgroup paths, at least one IP, every one a valid
//   IPv4 or IPv6 address, and labels and annotations that are string-to-string maps without a prototype key
//   smuggled in (`__proto__` stays an ordinary key or is refused).

import net from 'node:net';
import { parseCniEvent } from '../../../src/enroll/cni-protocol';
import { EnrollError, parseEnrollRequest } from '../../../src/enroll/protocol';
import { FuzzInput, jsonValue } from '../input';
import { check, type FuzzTarget } from '../target';

const KEYS = ['uid', 'name', 'namespace', 'serviceAccount', 'netnsPath', 'cgroupPath', 'ips', 'labels', 'annotations', 'command', 'containerId', '__proto__'];

function rejected(e: unknown): void {
  if (!(e instanceof EnrollError)) throw e;
  check(e.status === 400 && /^NM_ENROLL_[A-Z_]+$/.test(e.code), `EnrollError ${e.code} with status ${e.status}`);
}

function cni(body: string): void {
  let ev;
  try {
    ev = parseCniEvent(body);
  } catch (e) {
    rejected(e);
    return;
  }
  check(['ADD', 'DEL', 'CHECK'].includes(ev.command), `command ${ev.command} accepted`);
  for (const f of ['namespace', 'name', 'containerId', 'netnsPath'] as const) check(typeof ev[f] === 'string', `${f} not a string`);
  check(ev.uid === undefined || typeof ev.uid === 'string', 'uid not a string');
  check(ev.ips.every((ip) => net.isIP(ip) !== 0) && (ev.command !== 'ADD' || ev.ips.length > 0), () => `ips ${JSON.stringify(ev.ips)} accepted`);
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  const mode = input.byte();
  // Seeds are raw bodies (mode byte 0); odd modes build the body from JSON values.
  const body = mode & 1 ? JSON.stringify(jsonValue(input, KEYS, 4)) : input.rest().toString('utf8');
  if (mode & 2) {
    cni(body);
    return;
  }
  let req;
  try {
    req = parseEnrollRequest(body);
  } catch (e) {
    rejected(e);
    return;
  }
  for (const f of ['name', 'namespace', 'serviceAccount'] as const) check(NAME.test(req[f]), `${f} ${JSON.stringify(req[f])} accepted`);
  check(typeof req.uid === 'string' && req.uid.length > 0, 'empty uid accepted');
  check(req.netnsPath.startsWith('/') && req.cgroupPath.startsWith('/'), 'relative path accepted');
  check(req.ips.length > 0 && req.ips.every((ip) => net.isIP(ip) !== 0), () => `ips ${JSON.stringify(req.ips)} accepted`);
  for (const m of [req.labels, req.annotations]) {
    check(Object.getPrototypeOf(m) === Object.prototype || Object.getPrototypeOf(m) === null, 'labels or annotations with a changed prototype');
    for (const v of Object.values(m)) check(typeof v === 'string', 'a non-string label or annotation accepted');
  }
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 4096,
  dict: ['"uid"', '"name"', '"namespace"', '"serviceAccount"', '"netnsPath"', '"cgroupPath"', '"ips"', '"labels"', '"annotations"', '"__proto__"', '"10.0.0.1"', '"::1"', '"/run/netns/p"', 'null', 'true', '{}', '[]'],
  run,
};
