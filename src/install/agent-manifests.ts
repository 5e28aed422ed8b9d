// The node agent's objects: ServiceAccount, RBAC, the CNI ConfigMap and the DaemonSet, with the reason for each
// privilege it holds (rendered as comments next to it).

import type { InstallValues } from './values';
import { labels, type Manifest } from './manifest';

export const AGENT_NAME = 'nodemesh-agent';
export const CNI_CONFIGMAP = 'nodemesh-cni-config';
export const PRIORITY_CLASS = 'nodemesh-node-critical';
/** Where the control plane publishes the mesh root in every namespace (like istio-ca-root-cert). */
export const ROOT_CONFIGMAP = 'nodemesh-ca-root-cert';
export const CA_AUDIENCE = 'nodemesh-ca';

/** Each capability the agent adds, and why it cannot do without it. */
// No SYS_RESOURCE: it only raised RLIMIT_MEMLOCK for kernels before 5.11, which charged BPF maps against it; the
// agent needs 5.15+, where maps are charged to the memory cgroup.
export const AGENT_CAPABILITIES: { cap: string; why: string }[] = [
  { cap: 'BPF', why: 'load the programs and create/pin their maps (bpf())' },
  { cap: 'PERFMON', why: 'the verifier admits programs that handle socket pointers (sk_lookup, sockops) only with it' },
  { cap: 'NET_ADMIN', why: 'attach cgroup/sk_lookup programs, SO_MARK 1337 on the agent\'s own sockets, netns-local listeners' },
  { cap: 'SYS_ADMIN', why: 'setns() into pod network namespaces to open their listeners and upstream sockets' },
  { cap: 'SYS_PTRACE', why: 'read /proc/PID/ns/net of pod processes to find the netns of pods that ran before the agent' },
];

export function agentImage(v: InstallValues): string {
  return v.agent.image ?? v.image;
}

export function agentObjects(v: InstallValues): Manifest[] {
  const ns = v.namespace;
  const l = labels('agent');
  const cniEntry = {
    type: 'nodemesh-cni',
    enrollSocket: '/run/nodemesh/agent/enroll.sock',
    logLevel: v.logLevel,
  };
  const args = [
    'agent',
    '--node=$(NODE_NAME)',
    '--state-dir=/run/nodemesh/agent',
    '--pin-root=/sys/fs/bpf/nodemesh/v1',
    '--cgroup-root=/sys/fs/cgroup',
    `--drain-seconds=${v.agent.drainSeconds}`,
    `--concurrency=${v.agent.concurrency}`,
    `--log-level=${v.logLevel}`,
    `--trust-domain=${v.trustDomain}`,
    // admin stays on 127.0.0.1 + admin.sock; metrics and readiness on the node address, their own paths only
    '--admin-host=127.0.0.1',
    '--probe-host=$(HOST_IP)',
    // xDS and the CA over TLS: the server checked against the mesh root, the agent known by its projected token
    `--xds=nodemesh-controlplane.${ns}.svc:15012`,
    '--xds-root-file=/var/run/nodemesh/ca/root-cert.pem',
    '--xds-token-file=/var/run/secrets/nodemesh/token',
    `--ca-address=nodemesh-controlplane.${ns}.svc:15012`,
    '--ca-root-file=/var/run/nodemesh/ca/root-cert.pem',
    '--ca-token-file=/var/run/secrets/nodemesh/token',
    // pods on this node from the API (reconcile), the CNI plugin installed into the host's CNI dirs
    '--kubernetes',
    '--proc-root=/proc',
    '--cni-bin-dir=/host/cni/bin',
    '--cni-conf-dir=/host/cni/net.d',
    '--cni-config=/etc/nodemesh/cni/plugin.json',
    '--cni-host-dir=/var/lib/nodemesh/cni',
  ];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: AGENT_NAME, namespace: ns, labels: l } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: AGENT_NAME, labels: l },
      rules: [
        // reconcile: the pods of this node (the agent filters by spec.nodeName) and their namespaces' labels
        { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: AGENT_NAME, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: AGENT_NAME },
      subjects: [{ kind: 'ServiceAccount', name: AGENT_NAME, namespace: ns }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: AGENT_NAME, namespace: ns, labels: l },
      // on SIGTERM the agent removes its CNI entry only when its DaemonSet is gone (an uninstall, not an upgrade)
      rules: [{ apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: [AGENT_NAME], verbs: ['get'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: AGENT_NAME, namespace: ns, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: AGENT_NAME },
      subjects: [{ kind: 'ServiceAccount', name: AGENT_NAME, namespace: ns }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CNI_CONFIGMAP, namespace: ns, labels: l },
      data: { 'plugin.json': `${JSON.stringify(cniEntry, null, 2)}\n` },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: AGENT_NAME, namespace: ns, labels: l },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': AGENT_NAME } },
        // A new agent starts beside the old one and adopts its pinned state before the old one stops (DESIGN 11).
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: {
            labels: { ...l, 'app.kubernetes.io/name': AGENT_NAME },
            annotations: {
              // Runtime default AppArmor profiles deny mount (bpffs) and ptrace reads of other processes' ns links.
              'container.apparmor.security.beta.kubernetes.io/agent': 'unconfined',
              'container.apparmor.security.beta.kubernetes.io/mount-bpffs': 'unconfined',
              'prometheus.io/scrape': 'true',
              'prometheus.io/port': '15020',
            },
          },
          spec: {
            hostNetwork: true,
            hostPID: true,
            // hostNetwork pods resolve with the node's resolv.conf unless told otherwise: the agent must resolve
            // the control plane's Service name.
            dnsPolicy: 'ClusterFirstWithHostNet',
            serviceAccountName: AGENT_NAME,
            priorityClassName: PRIORITY_CLASS,
            terminationGracePeriodSeconds: v.agent.drainSeconds + 10,
            tolerations: v.agent.tolerations,
            initContainers: [
              {
                name: 'mount-bpffs',
                image: agentImage(v),
                imagePullPolicy: v.imagePullPolicy,
                // Only this short-lived container is privileged: a mount that must propagate to the host
                // (Bidirectional) is allowed only to privileged containers. It mounts bpffs when the host has none,
                // so the agent's pins outlive the agent.
                command: ['sh', '-c', 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf'],
                securityContext: { privileged: true },
                volumeMounts: [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }],
                resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
              },
            ],
            containers: [
              {
                name: 'agent',
                image: agentImage(v),
                imagePullPolicy: v.imagePullPolicy,
                args,
                env: [
                  { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                  { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
                securityContext: {
                  privileged: false,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'], add: AGENT_CAPABILITIES.map((c) => c.cap) },
                  // bpf() and setns() are outside what runtime default seccomp profiles allow a container.
                  seccompProfile: { type: 'Unconfined' },
                },
                ports: [
                  { name: 'metrics', containerPort: 15020, protocol: 'TCP' },
                  { name: 'ready', containerPort: 15021, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 2, failureThreshold: 3 },
                // Only a main thread that stopped answering for a minute: an agent waiting for the control plane
                // or draining is alive. Worker threads have their own watchdog.
                livenessProbe: { httpGet: { path: '/healthz/live', port: 15021 }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
                resources: v.agent.resources,
                volumeMounts: [
                  { name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
                  { name: 'cgroup', mountPath: '/sys/fs/cgroup', readOnly: false },
                  { name: 'netns', mountPath: '/run/netns', mountPropagation: 'HostToContainer' },
                  { name: 'state', mountPath: '/run/nodemesh' },
                  { name: 'cni-bin', mountPath: '/host/cni/bin' },
                  { name: 'cni-conf', mountPath: '/host/cni/net.d' },
                  { name: 'cni-config', mountPath: '/etc/nodemesh/cni', readOnly: true },
                  // the plugin's node binary and code, at the path the launcher in the CNI bin dir names
                  { name: 'cni-runtime', mountPath: '/var/lib/nodemesh/cni' },
                  { name: 'ca-token', mountPath: '/var/run/secrets/nodemesh', readOnly: true },
                  { name: 'ca-root', mountPath: '/var/run/nodemesh/ca', readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'DirectoryOrCreate' } },
              { name: 'cgroup', hostPath: { path: '/sys/fs/cgroup', type: 'Directory' } },
              { name: 'netns', hostPath: { path: '/run/netns', type: 'DirectoryOrCreate' } },
              { name: 'state', hostPath: { path: '/run/nodemesh', type: 'DirectoryOrCreate' } },
              { name: 'cni-bin', hostPath: { path: v.agent.cniBinDir, type: 'DirectoryOrCreate' } },
              { name: 'cni-conf', hostPath: { path: v.agent.cniConfDir, type: 'DirectoryOrCreate' } },
              { name: 'cni-config', configMap: { name: CNI_CONFIGMAP } },
              { name: 'cni-runtime', hostPath: { path: '/var/lib/nodemesh/cni', type: 'DirectoryOrCreate' } },
              {
                name: 'ca-token',
                projected: { sources: [{ serviceAccountToken: { path: 'token', audience: CA_AUDIENCE, expirationSeconds: 3600 } }] },
              },
              // published by the control plane in every namespace
              { name: 'ca-root', configMap: { name: ROOT_CONFIGMAP } },
              { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
            ],
          },
        },
      },
    },
  ];
}
