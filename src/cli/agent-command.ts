// `nodemesh agent`: runs the node agent until SIGTERM (drain + detach) or SIGKILL (pinned state stays).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { Agent, type AgentOptions } from '../agent/agent';
import { createSecretManager } from '../identity/secret-manager';
import { openDatapath } from '../datapath/datapath';
import { loadNative, repoRoot } from '../datapath/native';
import { createLogger, type Logger } from '../telemetry/logger';
import { H2_ENGINES, type H2EngineName, isH2EngineName } from '../proxy/hbone/h2-engine';
import { runDaemon } from './daemon';
import { parseMessageBytes, XDS_MAX_MESSAGE_BYTES } from '../xds/limits';
import { DEFAULT_HANDSHAKE_LIMITS } from '../proxy/hbone/handshake-limits';
import { cgroupCpuLimit, findOrMountCgroup2, processCgroup2Path } from '../util/cgroup2';
import { mountCommand } from '../util/host-fs';
import type { AccessLogMode } from '../proxy/http/layers/telemetry';
import type { CniLifecycleOptions } from '../agent/cni-lifecycle';
import { addSamplingOverride, DEFAULT_SAMPLING, parseSamplingPercent, type SamplingConfig } from '../telemetry/tracing/sampling';
import { parseOtlpEndpoint, type TracingOptions } from '../telemetry/tracing/tracing-config';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Tracing from the flags: spans go to --otlp-endpoint, else to the control plane (--xds), else nowhere. */
function tracingOptions(o: { otlpEndpoint?: string; otlpProtocol?: string; traceSampling: string; traceSamplingOverride: string[]; traceKeepFailures: string; xds?: string; xdsRootFile?: string; xdsTokenFile?: string }): TracingOptions {
  if (o.traceKeepFailures !== 'on' && o.traceKeepFailures !== 'off') throw new Error(`--trace-keep-failures must be on or off, not "${o.traceKeepFailures}"`);
  let sampling: SamplingConfig = { ...DEFAULT_SAMPLING, defaultPercent: parseSamplingPercent(o.traceSampling), keepFailures: o.traceKeepFailures === 'on' };
  for (const spec of o.traceSamplingOverride) sampling = addSamplingOverride(sampling, spec);
  const target = o.otlpEndpoint ?? o.xds;
  const endpoint = target === undefined || target === 'none' ? null : parseOtlpEndpoint(target, o.otlpEndpoint === undefined ? 'grpc' : o.otlpProtocol);
  // to the control plane: the way xDS goes, over TLS with the node's token when xDS does
  if (endpoint && o.otlpEndpoint === undefined && o.xdsRootFile !== undefined) endpoint.tls = { rootFile: o.xdsRootFile, tokenFile: o.xdsTokenFile };
  return { sampling, endpoint };
}

function int(v: string): number {
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`expected a non-negative integer, got "${v}"`);
  return n;
}

function positive(v: string): number {
  const n = int(v);
  if (n === 0) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
}

interface HandshakeFlags {
  hboneHandshakeTimeoutMs: number;
  hboneMaxHandshakesPerSource: number;
  hboneMaxHandshakesPerPod: number;
  hboneMaxHandshakes: number;
}

/** CPUs the agent may use: those it may run on, fewer if its cgroup has a CPU quota (a Kubernetes limit). */
function usableCpus(cgroup2Root: string): number {
  const rel = processCgroup2Path('self');
  const limit = rel === null ? null : cgroupCpuLimit(cgroup2Root, rel);
  return Math.min(os.availableParallelism(), limit ?? Infinity);
}

function meshOptions(
  o: { caTokenFile?: string; caAddress?: string; caRootFile?: string; certValidity: number; trustDomain: string; xds?: string; hboneKeepaliveMs: number; hboneH2: string; stateDir: string } & HandshakeFlags,
  log: Logger,
): AgentOptions['mesh'] {
  if (!o.caTokenFile) return undefined;
  const caAddress = o.caAddress ?? o.xds;
  if (!caAddress) throw new Error('--ca-token-file needs a CA: give --ca-address or --xds');
  return {
    trustDomain: o.trustDomain,
    h2: o.hboneH2 as H2EngineName, // checked on entry
    keepalive: o.hboneKeepaliveMs > 0 ? { idleMs: o.hboneKeepaliveMs, timeoutMs: o.hboneKeepaliveMs } : null,
    handshakes: {
      timeoutMs: o.hboneHandshakeTimeoutMs,
      limits: { perSource: o.hboneMaxHandshakesPerSource, perPod: o.hboneMaxHandshakesPerPod, total: o.hboneMaxHandshakes },
    },
    identity: (registry) =>
      createSecretManager({
        registry,
        caAddress,
        tokenFile: o.caTokenFile,
        caRootFile: o.caRootFile,
        trustDomain: o.trustDomain,
        validitySeconds: o.certValidity,
        certDir: path.join(o.stateDir, 'certs'),
        log: log.child({ component: 'identity' }),
      }),
  };
}

/** nodemesh-cni installation, when both CNI dirs are given. */
function cniOptions(o: { cniBinDir?: string; cniConfDir?: string; cniConfig?: string; cniHostDir: string; kubeconfig?: string; stateDir: string }): CniLifecycleOptions | undefined {
  if (o.cniBinDir === undefined && o.cniConfDir === undefined) return undefined;
  if (o.cniBinDir === undefined || o.cniConfDir === undefined) throw new Error('give both --cni-bin-dir and --cni-conf-dir, or neither');
  let entry: Record<string, unknown> = { enrollSocket: path.join(o.stateDir, 'enroll.sock') };
  if (o.cniConfig !== undefined) {
    try {
      entry = { ...entry, ...(JSON.parse(fs.readFileSync(o.cniConfig, 'utf8')) as Record<string, unknown>) };
    } catch (err) {
      throw new Error(`--cni-config ${o.cniConfig}: ${(err as Error).message} (it must be a JSON object: the conflist entry)`);
    }
  }
  return {
    binDir: o.cniBinDir,
    confDir: o.cniConfDir,
    hostDir: o.cniHostDir,
    entry,
    appRoot: repoRoot(),
    // In a pod: the plugin gets a kubeconfig of its own (for fail-closed pods while the agent is down).
    serviceAccountDir: o.kubeconfig === undefined ? '/var/run/secrets/kubernetes.io/serviceaccount' : undefined,
    // The DaemonSet being gone (404) or our access to it revoked with it (403) is an uninstall; anything else is not.
    uninstalling: async () => {
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
      else kc.loadFromDefault();
      try {
        const ds = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDaemonSet({ namespace: process.env.POD_NAMESPACE ?? 'nodemesh-system', name: 'nodemesh-agent' });
        return !!ds.metadata?.deletionTimestamp;
      } catch (err) {
        const code = (err as { code?: number }).code;
        if (code === 404 || code === 403) return true;
        throw err;
      }
    },
  };
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent (one per node)')
    .option('--node <name>', 'node name', process.env.NODE_NAME ?? os.hostname())
    .option('--state-dir <dir>', 'runtime state: enroll.sock, admin.sock, pods.json, the last xDS config, certificates (root-only)', '/run/nodemesh/agent')
    .option('--pin-root <dir>', 'bpffs directory for pinned maps and links', '/sys/fs/bpf/nodemesh/v1')
    .option('--cgroup-root <dir>', 'cgroup v2 directory to attach connect/sockops programs to (default: the cgroup v2 root)')
    .option('--admin-port <port>', 'admin HTTP port on --admin-host (0: unix socket only)', int, 15000)
    .option('--metrics-port <port>', 'Prometheus port (0: off)', int, 15020)
    .option('--ready-port <port>', 'readiness port (0: off)', int, 15021)
    .option('--admin-host <ip>', 'address of the admin port (keep it on loopback: it serves /config_dump and POST /logging)', '127.0.0.1')
    .option('--probe-host <ip>', 'address of the metrics and readiness ports, which serve only /metrics and /healthz/* (default: --admin-host; in Kubernetes the node IP)')
    .option('--drain-seconds <s>', 'on SIGTERM without a successor, how long open connections may finish', int, 5)
    .option(
      '--handover-drain-seconds <s>',
      'after handing over to a new agent, how long open connections may go on (a SIGTERM then does not cut it short: give the DaemonSet a terminationGracePeriodSeconds above it)',
      int,
      3600,
    )
    .option('--xds <address>', 'control plane ADS address: host:port or unix:///path (none: passthrough only)')
    .option('--xds-mode <mode>', 'ADS flavour: delta or sotw', 'delta')
    .option('--xds-max-message-bytes <size>', 'largest xDS message taken (4MiB): at least the control plane\'s own --xds-max-message-bytes', parseMessageBytes, XDS_MAX_MESSAGE_BYTES)
    .option('--xds-root-file <file>', 'dial --xds over TLS, verifying the control plane with this root (the mesh root)')
    .option('--xds-token-file <file>', "with --xds-root-file: this node's credential (a projected ServiceAccount token), re-read for every stream")
    .option('--ca-token-file <file>', "this node's credential for the control plane's CA; enables mTLS (HBONE) between mesh pods")
    .option('--ca-address <address>', 'the CA (default: the --xds address)')
    .option('--ca-root-file <file>', 'verify the CA over TLS with this root (default: plaintext, e.g. a unix socket)')
    .option('--cert-validity <seconds>', 'lifetime to ask for workload certificates', int, 24 * 3600)
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'cluster.local')
    .option(
      '--hbone-keepalive-ms <ms>',
      'HBONE liveness: PING a peer agent heard nothing from for this long; as long again without a byte ends the connection and its tunnels (0: off)',
      int,
      10_000,
    )
    .option('--hbone-handshake-timeout-ms <ms>', "a connection to a pod's 15008 that has not finished its TLS handshake by then is closed", positive, 10_000)
    .option(
      '--hbone-max-handshakes-per-source <n>',
      "TLS handshakes in progress on pods' 15008 from one source address (per thread); more are reset at once and counted",
      positive,
      DEFAULT_HANDSHAKE_LIMITS.perSource,
    )
    .option('--hbone-max-handshakes-per-pod <n>', "TLS handshakes in progress on one pod's 15008 (per thread)", positive, DEFAULT_HANDSHAKE_LIMITS.perPod)
    .option('--hbone-max-handshakes <n>', "TLS handshakes in progress on all pods' 15008 (per thread): bounds the memory they take", positive, DEFAULT_HANDSHAKE_LIMITS.total)
    .option(
      '--hbone-h2 <engine>',
      "HBONE's HTTP/2 implementation, client and server: nodemesh (ours) or node (Node's http2, for A/B or if ours misbehaves)",
      'nodemesh',
    )
    .option(
      '--concurrency <n>',
      'threads that serve pod traffic, the main thread included; each accepts from every pod\'s listeners (0: one per CPU the agent may use: its CPU affinity and its cgroup\'s cpu.max quota)',
      int,
      1,
    )
    .option(
      '--worker-stall-timeout <seconds>',
      'with --concurrency above 1: a worker thread whose event loop has not run for this long is terminated and restarted (its connections are lost; 0: never)',
      int,
      10,
    )
    .option('--l7 <on|off>', 'L7 for HTTP ports (routes, per-request balancing and telemetry, L7 authorization); off: every connection takes the L4 path', 'on')
    .option('--access-log <all|errors|off>', 'one JSON line per HTTP request: all of them, only failed ones (5xx or a response flag), or none', 'all')
    .option('--http-idle-timeout <seconds>', "a client's HTTP connection (HTTP/1.1 keep-alive, or HTTP/2 with no stream open) idle this long is closed (0: never)", int, 60)
    .option('--kubernetes', 'watch this node\'s pods in the Kubernetes API: resolve CNI events, enroll pods that ran before the agent, unenroll pods that left', false)
    .option('--kubeconfig <file>', 'kubeconfig for --kubernetes (default: in-cluster, then KUBECONFIG)')
    .option('--proc-root <dir>', "the node's /proc (the agent runs with hostPID), where reconcile finds pods' network namespaces", '/proc')
    .option('--cni-bin-dir <dir>', 'with --kubernetes: install nodemesh-cni into this CNI bin dir and chain it in --cni-conf-dir')
    .option('--cni-conf-dir <dir>', 'the CNI config dir whose first *.conflist gets the nodemesh-cni entry')
    .option('--cni-config <file>', 'JSON of the conflist entry (enrollSocket, kubeconfig, ...)')
    .option('--cni-host-dir <dir>', 'host directory (mounted at the same path) for the plugin\'s node binary and code', '/var/lib/nodemesh/cni')
    .option('--otlp-endpoint <url>', "where spans go over OTLP: http(s)://host:4318 (OTLP/HTTP protobuf), grpc://host:4317 or host:port (OTLP/gRPC), unix:///path; none: no tracing (default: the control plane's embedded trace store at --xds)")
    .option('--otlp-protocol <grpc|http/protobuf>', 'force the OTLP transport for --otlp-endpoint')
    .option('--trace-sampling <percent>', 'percent of requests without a caller decision that start a sampled trace (a caller\'s decision is always honoured)', '1')
    .option('--trace-sampling-override <spec>', 'per-route or per-namespace rate: route:NS/ROUTE/RULE=PERCENT or namespace:NAME=PERCENT (repeatable; a route wins over its namespace)', collect, [])
    .option('--trace-keep-failures <on|off>', 'keep the spans of failed requests (5xx or a response flag) even when not sampled', 'on')
    .option('--mesh-telemetry <on|off>', "stream reports and live-tap requests to the control plane at --xds (what the dashboard and nodemesh top/tap/stat show)", 'on')
    .option('--log-level <level>', 'pino level', process.env.NODEMESH_LOG_LEVEL ?? 'info')
    .action(async (o: HandshakeFlags & {
      node: string;
      stateDir: string;
      pinRoot: string;
      cgroupRoot?: string;
      adminPort: number;
      metricsPort: number;
      readyPort: number;
      adminHost: string;
      probeHost?: string;
      drainSeconds: number;
      handoverDrainSeconds: number;
      xds?: string;
      xdsMode: string;
      xdsMaxMessageBytes: number;
      xdsRootFile?: string;
      xdsTokenFile?: string;
      caTokenFile?: string;
      caAddress?: string;
      caRootFile?: string;
      certValidity: number;
      trustDomain: string;
      hboneKeepaliveMs: number;
      hboneH2: string;
      concurrency: number;
      workerStallTimeout: number;
      l7: string;
      accessLog: string;
      httpIdleTimeout: number;
      kubernetes: boolean;
      kubeconfig?: string;
      procRoot: string;
      cniBinDir?: string;
      cniConfDir?: string;
      cniConfig?: string;
      cniHostDir: string;
      otlpEndpoint?: string;
      otlpProtocol?: string;
      traceSampling: string;
      traceSamplingOverride: string[];
      traceKeepFailures: string;
      meshTelemetry: string;
      logLevel: string;
    }) => {
      if (o.l7 !== 'on' && o.l7 !== 'off') throw new Error(`--l7 must be on or off, not "${o.l7}"`);
      if (o.accessLog !== 'all' && o.accessLog !== 'errors' && o.accessLog !== 'off') throw new Error(`--access-log must be all, errors or off, not "${o.accessLog}"`);
      if (o.xdsMode !== 'delta' && o.xdsMode !== 'sotw') throw new Error(`--xds-mode must be delta or sotw, not "${o.xdsMode}"`);
      if (o.xdsTokenFile !== undefined && o.xdsRootFile === undefined) throw new Error('--xds-token-file needs --xds-root-file: a token is only ever sent over TLS');
      if (!isH2EngineName(o.hboneH2)) throw new Error(`--hbone-h2 must be one of ${H2_ENGINES.join(', ')}, not "${o.hboneH2}"`);
      const tracing = tracingOptions(o);
      if (o.meshTelemetry !== 'on' && o.meshTelemetry !== 'off') throw new Error(`--mesh-telemetry must be on or off, not "${o.meshTelemetry}"`);
      const log = createLogger({ level: o.logLevel });
      const cg2 = findOrMountCgroup2(mountCommand('cgroup2'));
      if (cg2.mounted) log.warn({ path: cg2.path }, 'cgroup v2 was not mounted; mounted it');
      const cgroupRoot = path.resolve(o.cgroupRoot ?? cg2.path);
      const agent = new Agent(
        {
          node: o.node,
          stateDir: o.stateDir,
          pinRoot: o.pinRoot,
          cgroupRoot,
          adminPort: o.adminPort,
          metricsPort: o.metricsPort,
          readyPort: o.readyPort,
          adminHost: o.adminHost,
          probeHost: o.probeHost,
          drainMs: o.drainSeconds * 1000,
          handoverDrainMs: o.handoverDrainSeconds * 1000,
          lock: loadNative(),
          xds: o.xds
            ? { address: o.xds, mode: o.xdsMode, maxMessageBytes: o.xdsMaxMessageBytes, tls: o.xdsRootFile !== undefined ? { rootFile: o.xdsRootFile, tokenFile: o.xdsTokenFile } : undefined }
            : undefined,
          mesh: meshOptions(o, log),
          dataThreads: o.concurrency === 0 ? usableCpus(cg2.path) : o.concurrency,
          workerStallTimeoutMs: o.workerStallTimeout * 1000,
          l7: { enabled: o.l7 === 'on', accessLog: o.accessLog as AccessLogMode, idleTimeoutMs: o.httpIdleTimeout * 1000 },
          tracing,
          defaultMetrics: true,
          telemetry: o.xds && o.meshTelemetry === 'on' ? { address: o.xds } : undefined,
          relieveMemory: () => loadNative().relieveMemory(),
          kubernetes: o.kubernetes ? { kubeconfig: o.kubeconfig, procRoot: o.procRoot, cni: cniOptions(o) } : undefined,
        },
        log,
        () => openDatapath({ pinRoot: o.pinRoot, cgroupRoot }, log.child({ component: 'datapath' })),
      );
      await runDaemon({ name: 'agent', log, start: () => agent.start(), stop: () => agent.shutdown(), finished: agent.exited });
    });
}
