// `nodemesh controlplane`: serves xDS from YAML files (watched) and/or the Kubernetes API until SIGTERM.

import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_METRICS_PORT, DEFAULT_XDS_ADDRESS, startControlPlane, type ControlPlaneHandle } from '../controlplane/control-plane';
import { routeStatusOfFiles } from '../controlplane/routes/offline-status';
import { formatRouteStatus, type RouteStatus } from '../controlplane/routes/route-status';
import { DEFAULT_DETECT_TIMEOUT_MS } from '../controlplane/routes/vip-listener';
import { runDaemon } from './daemon';
import { createLogger } from '../telemetry/logger';
import { Registry } from 'prom-client';
import { registerDefaultMetrics } from '../telemetry/default-metrics';
import type { DashboardListen } from '../controlplane/observe/dashboard-listen';
import { parseMessageBytes, XDS_MAX_MESSAGE_BYTES } from '../xds/limits';
import { DEFAULT_HEAP_HEADROOM_MB } from '../controlplane/heap-growth';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number 0-65535 (0: off)');
  return n;
}

function megabytes(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n > 65536) throw new InvalidArgumentError('must be whole MB, 0-65536');
  return n;
}

function xdsAddress(v: string): string {
  if (v.startsWith('unix:')) return v;
  if (!/^[^\s]+:\d+$/.test(v)) throw new InvalidArgumentError('must be HOST:PORT or unix:///path');
  return v;
}

/** Seconds from `90`, `90s`, `15m`, `24h` or `7d`. */
function duration(v: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError('must be a positive duration: 90, 90s, 15m, 24h or 7d');
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

function hostPort(v: string): string {
  if (!/^[^\s]+:\d+$/.test(v)) throw new InvalidArgumentError('must be HOST:PORT');
  return v;
}

/** Milliseconds from `100`, `100ms`, `1s`. */
function millis(v: string): number {
  const m = /^(\d+)(ms|s)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError('must be a positive duration: 100, 100ms or 1s');
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

function messageBytes(v: string): number {
  try {
    return parseMessageBytes(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * `nodemesh controlplane status [--config PATH]`: route status from a running control plane, or computed from the
 * files given with the controlplane command's own --config (and --domain).
 */
function registerStatusCommand(cp: Command): void {
  cp.command('status')
    .description('print the status of every HTTPRoute and GRPCRoute (Accepted, ResolvedRefs per Service parent): from the running control plane, or computed from --config files')
    .option('--url <url>', "a running control plane's HTTP endpoint (its --metrics-port)", `http://127.0.0.1:${DEFAULT_METRICS_PORT}`)
    .option('--json', 'print JSON', false)
    .action(async (o: { url: string; json: boolean }) => {
      // --config and --domain are the parent's options (commander gives them to it wherever they are written).
      const parent = cp.opts<{ config: string[]; domain: string }>();
      let statuses: RouteStatus[];
      if (parent.config.length > 0) statuses = routeStatusOfFiles(parent.config, parent.domain);
      else {
        const res = await fetch(new URL('/debug/config', o.url)).catch((err: unknown) => {
          throw new Error(`cannot reach the control plane at ${o.url} (${(err as Error).message}); is it running with --metrics-port? Or give --config to compute the status from files`);
        });
        if (!res.ok) throw new Error(`${o.url}/debug/config answered ${res.status}`);
        statuses = ((await res.json()) as { routeStatus?: RouteStatus[] }).routeStatus ?? [];
      }
      process.stdout.write(`${o.json ? JSON.stringify(statuses, null, 2) : formatRouteStatus(statuses)}\n`);
      // Scripts can tell: 1 when a route is invalid or not accepted / not resolved on one of its parents.
      const bad = statuses.some((s) => s.invalid || s.parents.some((p) => p.conditions.some((c) => c.status !== 'True')));
      process.exitCode = bad ? 1 : 0;
    });
}

export function registerControlPlaneCommand(program: Command): void {
  const cp = program
    .command('controlplane')
    .description('serve Envoy xDS v3 (ADS, state of the world and delta) built from Kubernetes objects')
    .option('--config <path>', 'YAML file or directory of YAML files to load and watch (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--kubernetes', 'list/watch the Kubernetes API (in-cluster credentials or the kubeconfig)', false)
    .option('--kubeconfig <file>', 'kubeconfig for --kubernetes (default: in-cluster, then KUBECONFIG / ~/.kube/config)')
    .option('--xds-address <addr>', 'where to serve xDS: HOST:PORT or unix:///path', xdsAddress, DEFAULT_XDS_ADDRESS)
    .option('--metrics-port <port>', 'HTTP port for /metrics and /debug/config on --metrics-host (0: off)', port, DEFAULT_METRICS_PORT)
    .option('--metrics-host <ip>', 'address for the metrics port', '127.0.0.1')
    .option('--domain <domain>', 'cluster domain of service host names', 'cluster.local')
    .option('--ca-dir <dir>', 'run the CA with a root generated on first start and kept in DIR (key mode 0600)')
    .option('--ca-cert <file>', 'run the CA with this signing certificate (a root, or an intermediate with --ca-chain)')
    .option('--ca-key <file>', 'private key (RSA, PEM) of --ca-cert')
    .option('--ca-chain <file>', 'PEM issuers of --ca-cert up to the root, root last')
    .option('--trust-domain <domain>', 'SPIFFE trust domain the CA signs for', 'cluster.local')
    .option('--max-cert-ttl <duration>', 'upper bound on workload certificate lifetimes (90s, 15m, 24h, 7d)', duration, 7 * 86400)
    .option('--node-tokens <file>', 'JSON {"<node>": "<token>"} authenticating node agents to the CA (re-read on change)')
    .option('--ca-address <addr>', 'also serve the CA over TLS on HOST:PORT (e.g. 0.0.0.0:15012), with a certificate from the CA itself', hostPort)
    .option('--ca-agent-namespace <ns>', 'with --kubernetes: namespace of the nodemesh-agent ServiceAccount whose tokens the CA accepts (default: any)')
    .option('--dashboard-address <host:port|off>', 'where the dashboard (web UI, API, live tap, OTLP/HTTP /v1/traces) listens', '127.0.0.1:15080')
    .option('--dashboard-fd <fd>', 'serve the dashboard on this inherited listening socket instead (the lab passes one open in the host\'s netns)', (v: string) => Number.parseInt(v, 10))
    .option('--dashboard-url <url>', 'with --dashboard-fd: the address people open, for logs')
    .option('--prometheus-url <url>', 'a Prometheus the dashboard reads history from (e.g. http://prometheus:9090)')
    .option('--secure-address <addr>', 'serve xDS, the CA and health over TLS on HOST:PORT (e.g. 0.0.0.0:15012); each agent authenticates with its node credential', hostPort)
    .option('--tls-names <names>', 'extra DNS names/IPs (comma-separated) in the TLS serving certificate, e.g. the Service name', (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--ca-secret <name>', 'with --kubernetes: keep the CA in this Secret (cacerts layout), generating a root when it is absent')
    .option('--ca-secret-namespace <ns>', 'namespace of --ca-secret', process.env.POD_NAMESPACE ?? 'nodemesh-system')
    .option('--root-configmap <name>', 'with --kubernetes: publish the CA root as ConfigMap NAME (root-cert.pem) in every namespace')
    .option('--ca-audience <aud>', 'audience agents\' projected tokens must carry (TokenReview spec.audiences)', 'nodemesh-ca')
    .option('--protocol-detection-timeout <duration>', 'how long ports of undeclared protocol wait for the client\'s first bytes (100ms, 1s)', millis, DEFAULT_DETECT_TIMEOUT_MS)
    .option('--xds-max-message-bytes <size>', 'largest xDS message sent or received (4MiB); agents must take as much (their own --xds-max-message-bytes)', messageBytes, XDS_MAX_MESSAGE_BYTES)
    .option('--heap-headroom <MB>', 'how far the heap may grow past what it holds before a full collection, kept within 20-100 % of it (0: V8\'s own factor, up to 4x)', megabytes, DEFAULT_HEAP_HEADROOM_MB)
    .option('--log-level <level>', 'pino level', process.env.NODEMESH_LOG_LEVEL ?? 'info')
    .action(
      async (o: {
        config: string[];
        kubernetes: boolean;
        kubeconfig?: string;
        xdsAddress: string;
        metricsPort: number;
        metricsHost: string;
        domain: string;
        caDir?: string;
        caCert?: string;
        caKey?: string;
        caChain?: string;
        trustDomain: string;
        maxCertTtl: number;
        nodeTokens?: string;
        caAddress?: string;
        caAgentNamespace?: string;
        dashboardAddress: string;
        dashboardFd?: number;
        dashboardUrl?: string;
        prometheusUrl?: string;
        secureAddress?: string;
        tlsNames?: string[];
        caSecret?: string;
        caSecretNamespace: string;
        rootConfigmap?: string;
        caAudience: string;
        protocolDetectionTimeout: number;
        xdsMaxMessageBytes: number;
        heapHeadroom: number;
        logLevel: string;
      }) => {
        const log = createLogger({ level: o.logLevel, name: 'controlplane' });
        if (o.config.length === 0 && !o.kubernetes) {
          process.stderr.write('nodemesh controlplane: give --config PATH and/or --kubernetes\n');
          process.exit(2);
        }
        const haveCa = o.caDir !== undefined || o.caCert !== undefined || o.caSecret !== undefined;
        if ((o.nodeTokens !== undefined || o.caAddress !== undefined || o.secureAddress !== undefined) && !haveCa) {
          process.stderr.write('nodemesh controlplane: --node-tokens, --ca-address and --secure-address need the CA: give --ca-secret NAME, --ca-dir DIR or --ca-cert/--ca-key\n');
          process.exit(2);
        }
        if ((o.caSecret !== undefined || o.rootConfigmap !== undefined) && !o.kubernetes) {
          process.stderr.write('nodemesh controlplane: --ca-secret and --root-configmap need --kubernetes\n');
          process.exit(2);
        }
        let dashboard: DashboardListen | false = false;
        if (o.dashboardFd !== undefined) {
          if (!Number.isInteger(o.dashboardFd) || o.dashboardFd < 3) {
            process.stderr.write('nodemesh controlplane: --dashboard-fd must be an inherited file descriptor (3 or more)\n');
            process.exit(2);
          }
          dashboard = { fd: o.dashboardFd, url: o.dashboardUrl ?? `fd ${o.dashboardFd}` };
        } else if (o.dashboardAddress !== 'off') {
          const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(o.dashboardAddress);
          if (!m || Number(m[2]) > 65535) {
            process.stderr.write(`nodemesh controlplane: --dashboard-address must be HOST:PORT or off, not "${o.dashboardAddress}"\n`);
            process.exit(2);
          }
          dashboard = { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
        }
        if (o.prometheusUrl !== undefined && !/^https?:\/\/./.test(o.prometheusUrl)) {
          process.stderr.write(`nodemesh controlplane: --prometheus-url must be an http(s) URL, not "${o.prometheusUrl}"\n`);
          process.exit(2);
        }
        const registry = new Registry();
        registerDefaultMetrics(registry);
        let handle: ControlPlaneHandle | undefined;
        await runDaemon({
          name: 'controlplane',
          log,
          start: async () => {
            handle = await startControlPlane({
              config: o.config,
              kubernetes: o.kubernetes ? { kubeconfig: o.kubeconfig } : false,
              xdsAddress: o.xdsAddress,
              metricsPort: o.metricsPort === 0 ? false : o.metricsPort,
              metricsHost: o.metricsHost,
              domain: o.domain,
              detectTimeoutMs: o.protocolDetectionTimeout,
              xdsMaxMessageBytes: o.xdsMaxMessageBytes,
              heapHeadroomMB: o.heapHeadroom,
              logger: log,
              registry,
              dashboard,
              prometheusUrl: o.prometheusUrl,
              secureAddress: o.secureAddress,
              rootConfigMap: o.rootConfigmap,
              ca:
                haveCa
                  ? {
                      secret: o.caSecret !== undefined ? { namespace: o.caSecretNamespace, name: o.caSecret, kubeconfig: o.kubeconfig } : undefined,
                      tlsNames: o.tlsNames,
                      dir: o.caDir,
                      certFile: o.caCert,
                      keyFile: o.caKey,
                      chainFile: o.caChain,
                      trustDomain: o.trustDomain,
                      maxCertTtlSeconds: o.maxCertTtl,
                      nodeTokensFile: o.nodeTokens,
                      tlsAddress: o.caAddress,
                      kubernetes: o.kubernetes && o.nodeTokens === undefined ? { kubeconfig: o.kubeconfig, agentNamespace: o.caAgentNamespace, audience: o.caAudience } : undefined,
                    }
                  : undefined,
            });
            // One line on stdout for whoever started us (the lab, scripts): where to dial.
            process.stdout.write(`${JSON.stringify({ msg: 'listening', xds: handle.address, secure: handle.secureAddress, ca: handle.ca?.tlsAddress, metricsPort: handle.metricsPort, dashboard: handle.dashboardUrl })}\n`);
          },
          stop: async () => {
            await handle?.close();
          },
        });
      },
    );
  registerStatusCommand(cp);
}
