// nodemesh's FaultInjection (nodemesh.io/v1alpha1): Gateway API has no fault filter, so a rule names one of
// these with an ExtensionRef filter. Validated like every kind (file:line:field), with the rules of its CRD
// (install/crds.ts) and the ones a schema cannot say: at least one of delay and abort, exactly one status.
//
//   apiVersion: nodemesh.io/v1alpha1
//   kind: FaultInjection
//   metadata: { name: flaky, namespace: shop }
//   spec:
//     delay: { fixed: 200ms, percentage: 20 }      # hold 20 % of requests 200 ms (flag DI)
//     abort: { httpStatus: 503, percentage: 30 }   # answer 30 % with 503 (flag FI); or grpcStatus: 14

import { Checker, type FieldPath, type Json } from '../checker';
import type { ObjectMeta } from '../objects';
import { goDuration } from './go-duration';
import type { FaultInjectionObject } from './traffic-objects';

export const FAULT_INJECTION_API = 'nodemesh.io/v1alpha1';

/** `percentage` 0-100 (a number; default 100) as a share 0-1. */
function share(c: Checker, v: unknown, path: FieldPath): number {
  if (v === undefined || v === null) return 1;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) {
    c.fail(path, `must be a number 0-100 (a percentage of requests), got ${JSON.stringify(v)}`);
    return 0;
  }
  return v / 100;
}

export function validateFaultInjection(c: Checker, doc: Json, meta: ObjectMeta, apiVersion: string): FaultInjectionObject {
  const spec = c.map(doc.spec, ['spec'], true) ?? {};
  c.unknownFields(spec, ['spec'], ['delay', 'abort']);
  const fault: FaultInjectionObject['fault'] = {};
  if (spec.delay !== undefined) {
    const p = ['spec', 'delay'];
    const d = c.map(spec.delay, p, true) ?? {};
    c.unknownFields(d, p, ['fixed', 'percentage']);
    if (d.fixed === undefined) c.fail([...p, 'fixed'], 'is required (a duration, like 150ms or 2s)');
    const ms = goDuration(c, d.fixed, [...p, 'fixed']);
    if (ms !== undefined) fault.delay = { ms, fraction: share(c, d.percentage, [...p, 'percentage']) };
  }
  if (spec.abort !== undefined) {
    const p = ['spec', 'abort'];
    const a = c.map(spec.abort, p, true) ?? {};
    c.unknownFields(a, p, ['httpStatus', 'grpcStatus', 'percentage']);
    const http = c.int(a.httpStatus, [...p, 'httpStatus'], false, 200, 599);
    const grpc = c.int(a.grpcStatus, [...p, 'grpcStatus'], false, 0, 16);
    if ((a.httpStatus === undefined) === (a.grpcStatus === undefined)) c.fail(p, 'must set exactly one of httpStatus (200-599) and grpcStatus (0-16)');
    const abort: NonNullable<FaultInjectionObject['fault']['abort']> = { fraction: share(c, a.percentage, [...p, 'percentage']) };
    if (http !== undefined) abort.httpStatus = http;
    if (grpc !== undefined) abort.grpcStatus = grpc;
    fault.abort = abort;
  }
  if (spec.delay === undefined && spec.abort === undefined) c.fail(['spec'], 'must set delay, abort, or both');
  return { kind: 'FaultInjection', meta, apiVersion, fault };
}
