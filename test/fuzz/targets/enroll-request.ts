// Fuzz target enroll-request: the enrollment API's request decoding (POST /v1/pods on the agent's unix
// socket), parseEnrollRequest on any body text.
//
// Invariant:
// - it throws nothing but EnrollError, always with HTTP status 400 and a stable NM_ENROLL_* code;
// - what it accepts has Kubernetes names (DNS subdomain form, at most 253 characters) for name, namespace
//   and service account, a non-empty uid, absolute netns and cgroup paths, at least one IP, every one a valid
//   IPv4 or IPv6 address, and labels and annotations that are string-to-string maps without a prototype key
//   smuggled in (`__proto__` stays an ordinary key or is refused).

import net from 'node:net';
import { EnrollError, parseEnrollRequest } from '../../../src/enroll/protocol';
import { check, type FuzzTarget } from '../target';

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function run(data: Buffer): void {
  let req;
  try {
    req = parseEnrollRequest(data.toString('utf8'));
  } catch (e) {
    if (e instanceof EnrollError) {
      check(e.status === 400 && /^NM_ENROLL_[A-Z_]+$/.test(e.code), `EnrollError ${e.code} with status ${e.status}`);
      return;
    }
    throw e;
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
