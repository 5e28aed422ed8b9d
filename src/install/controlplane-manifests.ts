// The control plane's objects: ServiceAccount, RBAC, Deployment (two replicas, each serving xDS and the CA),
// Service, PodDisruptionBudget.

import { CA_AUDIENCE, ROOT_CONFIGMAP, PRIORITY_CLASS, AGENT_NAME } from './agent-manifests';
import { labels, type Manifest } from './manifest';
import type { InstallValues } from './values';

export const CONTROLPLANE_NAME = 'nodemesh-controlplane';

export function controlPlaneObjects(v: InstallValues): Manifest[] {
  const ns = v.namespace;
  const l = labels('controlplane');
  const select = { 'app.kubernetes.io/name': CONTROLPLANE_NAME };
  const svcHost = `${CONTROLPLANE_NAME}.${ns}.svc`;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CONTROLPLANE_NAME, labels: l },
      rules: [
        { apiGroups: [''], resources: ['pods', 'services', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        // the mesh root in every namespace (ConfigMap nodemesh-ca-root-cert), kept current
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
        { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes', 'grpcroutes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes/status', 'grpcroutes/status'], verbs: ['update', 'patch'] },
        { apiGroups: ['security.istio.io'], resources: ['authorizationpolicies', 'peerauthentications'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['networking.istio.io'], resources: ['destinationrules'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['nodemesh.io'], resources: ['faultinjections'], verbs: ['get', 'list', 'watch'] },
        // agents authenticate with projected ServiceAccount tokens
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CONTROLPLANE_NAME, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLPLANE_NAME },
      subjects: [{ kind: 'ServiceAccount', name: CONTROLPLANE_NAME, namespace: ns }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l },
      rules: [
        // The CA's key lives in this Secret: the first replica creates it, the others read it. `create` cannot be
        // limited to a name; get/update can.
        { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
        { apiGroups: [''], resources: ['secrets'], resourceNames: [v.controlPlane.caSecret], verbs: ['get', 'update', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLPLANE_NAME },
      subjects: [{ kind: 'ServiceAccount', name: CONTROLPLANE_NAME, namespace: ns }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l },
      spec: {
        replicas: v.controlPlane.replicas,
        selector: { matchLabels: select },
        // No volume to hand over (the CA is in a Secret): a new replica starts before an old one stops.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: { labels: { ...l, ...select }, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15014' } },
          spec: {
            serviceAccountName: CONTROLPLANE_NAME,
            priorityClassName: PRIORITY_CLASS,
            tolerations: v.controlPlane.tolerations,
            affinity: {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: select } } },
                ],
              },
            },
            securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'controlplane',
                image: v.controlPlane.image ?? v.image,
                imagePullPolicy: v.imagePullPolicy,
                args: [
                  'controlplane',
                  '--kubernetes',
                  // plaintext xDS only on loopback (debugging from inside the pod); agents use 15012
                  '--xds-address=127.0.0.1:15010',
                  '--secure-address=0.0.0.0:15012',
                  `--tls-names=${svcHost},${svcHost}.cluster.local,${CONTROLPLANE_NAME}`,
                  `--ca-secret=${v.controlPlane.caSecret}`,
                  `--root-configmap=${ROOT_CONFIGMAP}`,
                  `--ca-agent-namespace=${ns}`,
                  `--ca-audience=${CA_AUDIENCE}`,
                  `--trust-domain=${v.trustDomain}`,
                  `--max-cert-ttl=${v.controlPlane.maxCertTtl}`,
                  `--log-level=${v.logLevel}`,
                  '--metrics-host=0.0.0.0',
                ],
                env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
                ports: [
                  { name: 'grpc-tls', containerPort: 15012, protocol: 'TCP' },
                  { name: 'http-metrics', containerPort: 15014, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/healthz/ready', port: 15014 }, periodSeconds: 2 },
                livenessProbe: { httpGet: { path: '/healthz/ready', port: 15014 }, periodSeconds: 10, failureThreshold: 6, initialDelaySeconds: 30 },
                resources: v.controlPlane.resources,
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l },
      spec: {
        selector: select,
        ports: [
          // protocol is spelled out: server-side apply keys these lists by port + protocol (1.20 has no default for it)
          { name: 'grpc-tls', port: 15012, targetPort: 15012, protocol: 'TCP', appProtocol: 'grpc' },
          { name: 'http-metrics', port: 15014, targetPort: 15014, protocol: 'TCP' },
        ],
      },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: CONTROLPLANE_NAME, namespace: ns, labels: l },
      spec: { minAvailable: 1, selector: { matchLabels: select } },
    },
  ];
}

/** Who may read the agents' objects: used by `check`. */
export const AGENT_SERVICE_ACCOUNT = AGENT_NAME;
