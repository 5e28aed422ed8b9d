// Who is calling, as the source agent knows it: the source pod's workload name and its `app` and `version`
// labels, sent on each HBONE CONNECT so the destination agent labels its metrics with them (Istio's
// source_workload, source_app, source_version) even for a pod that no Service selects, which it could not
// otherwise know. The header comes from an mTLS-authenticated agent; it is still checked: the namespace must
// be the one in the peer's SPIFFE ID, and every value must be a valid Kubernetes name or label value (so a
// value can neither break the metrics exposition nor grow its series beyond what pods themselves can).

import { parseSpiffeId } from '../../identity/types';
import type { Workload } from '../../state/workloads';
import { HBONE_DETECTED_HEADER } from './protocol';

export const HBONE_PEER_HEADER = 'x-nodemesh-peer';

export interface PeerMeta {
  workload: string;
  namespace: string;
  app: string | null;
  version: string | null;
}

/** A Kubernetes label value (63 characters at most). */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
/** A DNS-1123 subdomain (pod names, namespaces, the workload annotation). */
const NAME = /^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The header value for a local pod: `ns=…;wl=…[;app=…][;ver=…]` (none of the values can hold `;` or `=`). */
export function formatPeerMeta(pod: Workload): string {
  let v = `ns=${pod.namespace};wl=${pod.workloadName}`;
  const app = pod.labels.app;
  const version = pod.labels.version;
  if (app !== undefined && LABEL_VALUE.test(app)) v += `;app=${app}`;
  if (version !== undefined && LABEL_VALUE.test(version)) v += `;ver=${version}`;
  return v;
}

/** A pod's header value, made once per pod (its labels do not change while it is enrolled as that object). */
const formatted = new WeakMap<Workload, string>();

/**
 * The headers a source agent adds to every CONNECT it sends for `pod`: who is calling, and, on an undeclared
 * port, what its detection decided (`x-nodemesh-detected`, so the destination does not wait to detect again).
 */
export function connectHeaders(pod: Workload, detected?: string): Record<string, string> {
  let peer = formatted.get(pod);
  if (peer === undefined) formatted.set(pod, (peer = formatPeerMeta(pod)));
  return detected ? { [HBONE_PEER_HEADER]: peer, [HBONE_DETECTED_HEADER]: detected } : { [HBONE_PEER_HEADER]: peer };
}

/**
 * The caller's metadata from the header, or null when there is none or it does not hold: malformed, a value
 * that is not a valid name, or a namespace other than the one the peer's certificate names.
 */
export function parsePeerMeta(value: string | undefined, peerId: string | null): PeerMeta | null {
  if (value === undefined || peerId === null || value.length > 1024) return null;
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || fields.has(part.slice(0, eq))) return null;
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const ns = fields.get('ns');
  const wl = fields.get('wl');
  if (ns === undefined || wl === undefined || !NAME.test(ns) || !NAME.test(wl)) return null;
  if (parseSpiffeId(peerId)?.namespace !== ns) return null;
  const app = fields.get('app') ?? null;
  const version = fields.get('ver') ?? null;
  if ((app !== null && !LABEL_VALUE.test(app)) || (version !== null && !LABEL_VALUE.test(version))) return null;
  return { workload: wl, namespace: ns, app, version };
}
