// LDS on the agent, inbound: a node's listener -> its local workloads and each pod's security policy: the mTLS
// mode (chain metadata), the TCP view (network RBAC filters of the pod's chain) and, when the pod has an HTTP
// chain (controlplane/inbound-http.ts), the HTTP view (HTTP RBAC filters in its http_connection_manager).

import type { InboundPolicy, PolicyView } from '../state/authz';
import type { AgentResource, InboundWorkload } from './agent-resources';
import { decodeRbacPolicies } from './decode-rbac';
import { decodeTyped, isType, list, nodemeshMeta, XdsResourceError, type Msg } from './decode-util';
import { HCM_TYPE, HTTP_INSPECTOR_TYPE, HTTP_RBAC_TYPE, METADATA_NAMESPACE, RBAC_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE } from './resource-types';

export function decodeInboundListener(name: string, l: Msg): AgentResource {
  const meta = nodemeshMeta(l.metadata);
  for (const f of list(l, 'listener_filters')) {
    if (!isType(f.typed_config, HTTP_INSPECTOR_TYPE)) throw new XdsResourceError(`listener ${name}: listener filter ${String(f.name)} is not supported (http_inspector)`);
  }
  const workloads: InboundWorkload[] = [];
  const policies = new Map<string, InboundPolicy>();
  const httpViews = new Map<string, PolicyView>();
  for (const fc of list(l, 'filter_chains')) {
    const m = nodemeshMeta(fc.metadata);
    const w = { pod: String(m.pod ?? ''), namespace: String(m.namespace ?? ''), ip: String(m.ip ?? '') };
    const where = `listener ${name} chain ${String(fc.name || w.ip)}`;
    if (!w.ip) throw new XdsResourceError(`${where}: no pod IP in metadata ${METADATA_NAMESPACE}.ip`);
    const filters = list(fc, 'filters');
    if (filters.some((f) => isType(f.typed_config, HCM_TYPE))) {
      if (httpViews.has(w.ip)) throw new XdsResourceError(`${where}: a second HTTP chain for ${w.ip}`);
      httpViews.set(w.ip, decodeHttpView(where, filters, w.ip));
      continue;
    }
    if (policies.has(w.ip)) throw new XdsResourceError(`${where}: a second TCP chain for ${w.ip}`);
    workloads.push(w);
    policies.set(w.ip, decodeTcpPolicy(where, filters, m, w.ip));
  }
  for (const [ip, http] of httpViews) {
    const p = policies.get(ip);
    if (!p) throw new XdsResourceError(`listener ${name}: an HTTP chain for ${ip} without the pod's TCP chain`);
    p.http = http;
  }
  return { kind: 'inbound', node: String(meta.node ?? ''), workloads, policies };
}

/** DENY filters merge; at most one ALLOW (two would each have to pass, which one list cannot express). */
function addFilter(where: string, view: PolicyView, rbac: Msg, podIp: string): void {
  if (rbac.matcher) throw new XdsResourceError(`${where}: RBAC with a matcher tree is not supported (use rules)`);
  const rules = rbac.rules as Msg | null | undefined;
  // Envoy: no rules means the filter enforces nothing (shadow_rules only log, so they are ignored too).
  if (!rules) return;
  const action = String(rules.action ?? 'ALLOW');
  const compiled = decodeRbacPolicies(where, (rules.policies as Record<string, Msg> | undefined) ?? {}, { podIp });
  if (action === 'DENY') view.deny.push(...compiled);
  else if (action === 'ALLOW') {
    if (view.allow !== null) throw new XdsResourceError(`${where}: more than one RBAC filter with action ALLOW is not supported`);
    view.allow = compiled;
  } else throw new XdsResourceError(`${where}: RBAC action ${action} is not supported (ALLOW, DENY)`);
}

/** One pod's TCP chain: metadata `mtlsMode`, then network RBAC filters, then the tcp_proxy. */
function decodeTcpPolicy(where: string, filters: Msg[], meta: Record<string, unknown>, podIp: string): InboundPolicy {
  const mode = meta.mtlsMode ?? 'PERMISSIVE';
  if (mode !== 'STRICT' && mode !== 'PERMISSIVE') throw new XdsResourceError(`${where}: mtlsMode ${String(mode)} is not supported (STRICT, PERMISSIVE)`);
  const policy: InboundPolicy = { mtlsMode: mode, deny: [], allow: null };
  for (const f of filters) {
    if (isType(f.typed_config, RBAC_TYPE)) addFilter(where, policy, decodeTyped(where, f.typed_config), podIp);
    else if (!isType(f.typed_config, TCP_PROXY_TYPE)) throw new XdsResourceError(`${where}: network filter ${String(f.name)} is not supported (rbac, tcp_proxy)`);
  }
  return policy;
}

/** One pod's HTTP chain: an http_connection_manager with HTTP RBAC filters and the router. */
function decodeHttpView(where: string, filters: Msg[], podIp: string): PolicyView {
  if (filters.length !== 1) throw new XdsResourceError(`${where}: an HTTP chain must hold exactly one http_connection_manager`);
  const hcm = decodeTyped(where, filters[0]!.typed_config as never);
  const view: PolicyView = { deny: [], allow: null };
  const httpFilters = list(hcm, 'http_filters');
  httpFilters.forEach((f, i) => {
    if (isType(f.typed_config, HTTP_RBAC_TYPE)) addFilter(where, view, decodeTyped(where, f.typed_config), podIp);
    else if (isType(f.typed_config, ROUTER_TYPE)) {
      if (i !== httpFilters.length - 1) throw new XdsResourceError(`${where}: the router must be the last http filter`);
    } else throw new XdsResourceError(`${where}: http filter ${String(f.name)} is not supported inbound (rbac, router)`);
  });
  return view;
}
