// `nodemesh controlplane`: serves xDS from YAML files (watched) and/or the Kubernetes API until SIGTERM.

import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_METRICS_PORT, DEFAULT_XDS_ADDRESS, startControlPlane } from '../controlplane/control-plane';
import { createLogger } from '../telemetry/logger';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number 0-65535 (0: off)');
  return n;
}

function xdsAddress(v: string): string {
  if (v.startsWith('unix:')) return v;
  if (!/^[^\s]+:\d+$/.test(v)) throw new InvalidArgumentError('must be HOST:PORT or unix:///path');
  return v;
}

export function registerControlPlaneCommand(program: Command): void {
  program
    .command('controlplane')
    .description('serve Envoy xDS v3 (ADS, state of the world and delta) built from Kubernetes objects')
    .option('--config <path>', 'YAML file or directory of YAML files to load and watch (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--kubernetes', 'list/watch the Kubernetes API (in-cluster credentials or the kubeconfig)', false)
    .option('--kubeconfig <file>', 'kubeconfig for --kubernetes (default: in-cluster, then KUBECONFIG / ~/.kube/config)')
    .option('--xds-address <addr>', 'where to serve xDS: HOST:PORT or unix:///path', xdsAddress, DEFAULT_XDS_ADDRESS)
    .option('--metrics-port <port>', 'HTTP port for /metrics and /debug/config on --metrics-host (0: off)', port, DEFAULT_METRICS_PORT)
    .option('--metrics-host <ip>', 'address for the metrics port', '127.0.0.1')
    .option('--domain <domain>', 'cluster domain of service host names', 'cluster.local')
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
        logLevel: string;
      }) => {
        const log = createLogger({ level: o.logLevel, name: 'controlplane' });
        if (o.config.length === 0 && !o.kubernetes) {
          process.stderr.write('nodemesh controlplane: give --config PATH and/or --kubernetes\n');
          process.exit(2);
        }
        let handle;
        try {
          handle = await startControlPlane({
            config: o.config,
            kubernetes: o.kubernetes ? { kubeconfig: o.kubeconfig } : false,
            xdsAddress: o.xdsAddress,
            metricsPort: o.metricsPort === 0 ? false : o.metricsPort,
            metricsHost: o.metricsHost,
            domain: o.domain,
            logger: log,
          });
        } catch (err) {
          const e = err as { code?: string; message?: string };
          log.fatal({ err, code: e.code }, `control plane cannot start: ${e.message}`);
          log.flush();
          process.stderr.write(`nodemesh controlplane: ${e.message}${e.code ? ` [${e.code}]` : ''}\n`);
          process.exit(2);
        }
        // One line on stdout for whoever started us (the lab, scripts): where to dial.
        process.stdout.write(`${JSON.stringify({ msg: 'listening', xds: handle.address, metricsPort: handle.metricsPort })}\n`);
        let exiting = false;
        const stop = (signal: string): void => {
          if (exiting) return;
          exiting = true;
          log.info({ signal }, 'signal received');
          handle.close().then(
            () => {
              log.flush();
              process.exit(0);
            },
            (err: unknown) => {
              log.error({ err }, 'shutdown failed');
              log.flush();
              process.exit(1);
            },
          );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      },
    );
}
