// Typed Kubernetes objects the control plane understands: what validation produces and the store holds.

import type { RouteObject } from './routes/route-objects';
import type { TrafficObject } from './traffic/traffic-objects';

export const POD = 'Pod';
export const SERVICE = 'Service';

/** Kinds that are validated and stored; every one of them feeds translation. */
export const KNOWN_KINDS = {
  Pod: ['v1'],
  Service: ['v1'],
  Namespace: ['v1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'],
  AuthorizationPolicy: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  PeerAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  DestinationRule: ['networking.istio.io/v1', 'networking.istio.io/v1beta1'],
  FaultInjection: ['nodemesh.io/v1alpha1'],
} as const;

export type Kind = keyof typeof KNOWN_KINDS;

export function isKnownKind(kind: string): kind is Kind {
  return Object.prototype.hasOwnProperty.call(KNOWN_KINDS, kind);
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Where an object came from; `line` is 1-based, 0 for API-server objects. */
export interface ObjectOrigin {
  source: string;
  file: string;
  line: number;
  /** metadata.creationTimestamp (ms since the epoch), for objects from the API server: their age when two conflict. */
  created?: number;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: string;
}

export interface PodObject {
  kind: 'Pod';
  meta: ObjectMeta;
  nodeName?: string;
  serviceAccount: string;
  containers: { name: string; ports: ContainerPort[] }[];
  podIP?: string;
  phase?: string;
  /** False when the Ready condition says so, or the pod is terminating. */
  ready: boolean;
  /** In the mesh as far as the pod alone decides (enroll/membership.ts: not opted out, not host network); the model's pods also follow their Namespace's labels (controlplane/membership.ts). */
  inMesh: boolean;
  /** spec.hostNetwork (absent: false): the pod's IP is its node's, shared with every such pod there. */
  hostNetwork?: boolean;
  /** metadata.deletionTimestamp is set (absent: false). */
  deleting?: boolean;
}

export interface ServicePort {
  name?: string;
  port: number;
  protocol: string;
  /** A number, or a container port name resolved per pod. */
  targetPort: number | string;
  appProtocol?: string;
}

export interface ServiceObject {
  kind: 'Service';
  meta: ObjectMeta;
  /** As written in spec.clusterIP; undefined means "allocate one" (see vip-allocator). */
  clusterIP?: string;
  /** undefined: no selector, so no endpoints are derived from pods. */
  selector?: Record<string, string>;
  ports: ServicePort[];
  /** The rate budget for retries to this Service (nodemesh.io/retry-budget-* annotations); absent: the default. */
  retryBudget?: { ratio: number; minPerSecond: number; ttlMs: number };
}

/** The Istio root namespace: policies there apply mesh-wide. */
export const ROOT_NAMESPACE = 'istio-system';

/** PeerAuthentication mtls.mode as written; `UNSET` inherits from the parent scope. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'UNSET' | 'DISABLE';

export interface PeerAuthenticationObject {
  kind: 'PeerAuthentication';
  meta: ObjectMeta;
  /** undefined: namespace-wide (mesh-wide in the root namespace). */
  selector?: Record<string, string>;
  mode: MtlsMode;
}

/** One `rules[].from[].source`; undefined fields are absent (an empty list is kept: it matches nothing). */
export interface AuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  /** CIDRs or single IPs, as written. */
  ipBlocks?: string[];
  notIpBlocks?: string[];
  /** Istio's remote.ip: nodemesh trusts no X-Forwarded-For or PROXY header, so it is the peer's address too. */
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  /** `namespace/serviceaccount` (a bare name was written: the policy's namespace filled in). */
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
}

/** One `rules[].to[].operation`. hosts, methods and paths (and their not* forms) need HTTP. */
export interface AuthzOperation {
  ports?: number[];
  notPorts?: number[];
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** One `rules[].when` condition: `key` is an Istio attribute (`request.headers[x-user]`, `source.ip`, ...). */
export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthzRule {
  from: AuthzSource[];
  to: AuthzOperation[];
  /** ANDed with from and to; absent when the rule has none. */
  when?: AuthzCondition[];
}

export interface AuthorizationPolicyObject {
  kind: 'AuthorizationPolicy';
  meta: ObjectMeta;
  action: 'ALLOW' | 'DENY';
  /** undefined: every workload in the namespace (the whole mesh in the root namespace). */
  selector?: Record<string, string>;
  /** Istio: absent or empty rules match nothing (ALLOW with no rules = allow nothing); `{}` matches everything. */
  rules: AuthzRule[];
}

export type PolicyObject = PeerAuthenticationObject | AuthorizationPolicyObject;

/** A Namespace (cluster-scoped: `meta.namespace` is empty); only its labels matter, for mesh membership. */
export interface NamespaceObject {
  kind: 'Namespace';
  meta: ObjectMeta;
}

export type MeshObject = PodObject | ServiceObject | NamespaceObject | PolicyObject | RouteObject | TrafficObject;

export interface StoredObject {
  object: MeshObject;
  origin: ObjectOrigin;
  /**
   * The document as written. The store keeps it only for kinds shown as written (routes, in the dashboard):
   * for every other object it was a second copy (46 MB at 50,000 Services and 20,000 pods).
   */
  raw?: unknown;
}

export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function keyOf(o: MeshObject): string {
  return objectKey(o.kind, o.meta.namespace, o.meta.name);
}
