// `nodemesh install` / `nodemesh uninstall`: print every manifest for a cluster (or what to delete) to stdout.

import type { Command } from 'commander';
import { stringify } from 'yaml';
import { renderInstall, renderUninstall } from '../install/render';
import { defaultValues, loadValuesFile, parseSet, resolveValues, type InstallValues } from '../install/values';

interface Flags {
  values: string[];
  set: string[];
  image?: string;
  namespace?: string;
  trustDomain?: string;
  logLevel?: string;
  controlPlaneReplicas?: string;
  showValues?: boolean;
}

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

/** Values file(s) in order, then --set, then the dedicated flags. */
export function valuesFromFlags(o: Flags): InstallValues {
  const layers: Record<string, unknown>[] = o.values.map(loadValuesFile);
  layers.push(...o.set.map(parseSet));
  const flags: Record<string, unknown> = {};
  if (o.image !== undefined) flags.image = o.image;
  if (o.namespace !== undefined) flags.namespace = o.namespace;
  if (o.trustDomain !== undefined) flags.trustDomain = o.trustDomain;
  if (o.logLevel !== undefined) flags.logLevel = o.logLevel;
  if (o.controlPlaneReplicas !== undefined) flags.controlPlane = { replicas: Number(o.controlPlaneReplicas) };
  layers.push(flags);
  return resolveValues(...layers);
}

function withValueFlags(cmd: Command): Command {
  return cmd
    .option('-f, --values <file>', 'YAML values file (repeatable; later files win)', collect, [] as string[])
    .option('--set <path=value>', 'one value, e.g. agent.concurrency=2 or agent.tolerations=[{operator: Exists}] (repeatable)', collect, [] as string[])
    .option('--image <ref>', 'image of the agent and the control plane')
    .option('--namespace <ns>', 'namespace to install into (default nodemesh-system)')
    .option('--trust-domain <domain>', 'SPIFFE trust domain')
    .option('--log-level <level>', 'log level of the agents and the control plane')
    .option('--control-plane-replicas <n>', 'control plane replicas (each serves xDS and the CA)');
}

export function registerInstallCommands(program: Command): void {
  withValueFlags(program.command('install'))
    .description('print every manifest nodemesh needs on a cluster (nodemesh install | kubectl apply --server-side -f -)')
    .option('--show-values', 'print the resolved values instead of the manifests')
    .action((o: Flags) => {
      if (o.showValues) {
        process.stdout.write(stringify(o.values.length || o.set.length ? valuesFromFlags(o) : defaultValues()));
        return;
      }
      process.stdout.write(renderInstall(valuesFromFlags(o)));
    });
  withValueFlags(program.command('uninstall'))
    .description('print what install created, for deletion (nodemesh uninstall | kubectl delete --ignore-not-found -f -)')
    .action((o: Flags) => {
      process.stdout.write(renderUninstall(valuesFromFlags(o)));
    });
}
